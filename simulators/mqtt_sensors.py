"""Simulated MQTT temperature/humidity sensors in the formats real firmware publishes.

Zigbee2MQTT devices, Tasmota plugs with a probe, Shelly Plus H&T (``<id>/events/rpc``
NotifyStatus), ESPHome nodes (one plain-text ``<node>/sensor/<name>/state`` topic per quantity),
RuuviTags heard by a Ruuvi Gateway (data format 5 advertisements, the sequence counter counting
up) and ShelfSense's own JSON. :class:`MqttSensorSimulator` publishes, every ``interval_s``, one
QoS 1 message per sensor in that sensor's firmware format (:mod:`devices.mqtt_formats`).
It uses the project's own MQTT client (:mod:`shelfsense.mqtt_session`, asyncio, no thread): a
background task connects, reads the broker's PUBACKs and reconnects after a broker restart with a
doubling delay (``reconnect_min_s`` .. ``reconnect_max_s``); the simulator only publishes while
connected, like a Zigbee2MQTT bridge whose broker is away (counted in ``skipped_offline``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import unquote, urlsplit

from devices.errors import TransportError
from devices.mqtt_formats import esphome_quantity
from devices.mqtt_packets import MQTT_V311
from devices.mqtt_registry import Encoder, SimSample, mqtt_format, sim_format_names
from shelfsense.mqtt_session import MqttSession, SessionOptions, open_session

log = logging.getLogger(__name__)

# What broken firmware, a truncated radio packet or a misconfigured bridge put on the wire.
MALFORMED_PAYLOADS: tuple[bytes, ...] = (
    b'{"temperature": 4.2, "humidity":',
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'{"temperature": "warm"}',
)
# Bytes not yet written to the socket past which a publish is dropped (a stalled broker).
MAX_UNSENT_BYTES = 64 * 1024


@dataclass(slots=True)
class SimulatedMqttSensor:
    """One sensor: its topic, firmware format and where its (temperature degC, humidity %RH) come from."""

    topic: str
    format: str
    source: Callable[[], tuple[float, float]]
    battery: int | None = None
    linkquality: int | None = None
    temp_unit: Literal["C", "F"] = "C"  # Tasmota only: a probe configured for Fahrenheit
    # ESPHome only: which of the source's values this state topic carries (default: from the name).
    quantity: Literal["temperature", "humidity"] | None = None
    _sequence: int = field(default=0, repr=False)
    _encode: Encoder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        encode = mqtt_format(self.format).encode if self.format in sim_format_names() else None
        if encode is None:
            raise ValueError(f"unsupported sensor format {self.format!r}; use one of {sim_format_names()}")
        self._encode = encode
        if self.format == "esphome" and (self.quantity or esphome_quantity(self.topic)) not in (
            "temperature",
            "humidity",
        ):
            raise ValueError(f"ESPHome sensor {self.topic!r}: give quantity='temperature' or 'humidity'")

    def payload(self, now: datetime) -> bytes:
        temperature, humidity = self.source()
        self._sequence += 1
        sample = SimSample(
            self.topic,
            now,
            temperature,
            humidity,
            self.battery,
            self.linkquality,
            self.temp_unit,
            self.quantity,
            self._sequence,
        )
        return self._encode(sample)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:port]`` or ``mqtts://...`` (default ports 1883 / 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"broker URL must look like mqtt://host:port, got {url!r}")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class MqttSensorSimulator:
    """Publishes every sensor's payload every ``interval_s`` while connected; see the module docstring."""

    def __init__(
        self,
        url: str,
        sensors: list[SimulatedMqttSensor],
        interval_s: float = 1.0,
        *,
        client_id: str | None = None,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 8,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.address = parse_broker_url(url)
        self.url = url
        self.sensors = list(sensors)
        self.interval_s = interval_s
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        # MQTT 3.1.1, clean session: an empty client id lets the broker assign one.
        self._options = SessionOptions(
            client_id or "",
            version=MQTT_V311,
            keepalive_s=30,
            clean_start=True,
            username=self.address.username,
            password=self.address.password if self.address.username else None,
        )
        self._session: MqttSession | None = None
        self._connection: asyncio.Task[None] | None = None
        self._malformed_next = 0
        self.connected = False
        self.connects = 0
        self.published = 0  # acknowledged by the broker (PUBACK)
        self.publish_attempts = 0
        self.skipped_offline = 0
        self.malformed_sent = 0

    # --------------------------------------------------------------- public surface

    def set_malformed_next(self, n: int) -> None:
        """The next ``n`` messages carry garbage instead of a valid payload."""
        self._malformed_next += n

    async def run(self) -> None:
        """Connect (retrying in the background) and publish until cancelled."""
        loop = asyncio.get_running_loop()
        self._connection = asyncio.create_task(self._stay_connected(), name="mqtt-sim-connection")
        try:
            next_tick = loop.time()
            while True:
                self.publish_once()
                next_tick = max(next_tick + self.interval_s, loop.time())
                await asyncio.sleep(next_tick - loop.time())
        finally:
            self.close()

    def publish_once(self) -> int:
        """Publish one message per sensor now (if connected); returns how many were sent."""
        session = self._session
        if not self.connected or session is None or session.closing:
            self.skipped_offline += len(self.sensors)
            return 0
        now = datetime.now(UTC)
        handed = 0
        for sensor in self.sensors:
            payload = self._next_payload(sensor, now)
            self.publish_attempts += 1
            if session.writer.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
                continue  # the broker does not take our bytes: dropped, like a full paho queue
            session.publish(sensor.topic, payload, qos=1)
            handed += 1
        return handed

    def close(self) -> None:
        """Disconnect and stop the connection task (idempotent)."""
        if self._connection is not None:
            self._connection.cancel()  # its cleanup sends DISCONNECT and closes the socket
            self._connection = None
        self.connected = False

    # --------------------------------------------------------------- internals

    def _next_payload(self, sensor: SimulatedMqttSensor, now: datetime) -> bytes:
        if self._malformed_next > 0:
            self._malformed_next -= 1
            payload = MALFORMED_PAYLOADS[self.malformed_sent % len(MALFORMED_PAYLOADS)]
            self.malformed_sent += 1
            return payload
        return sensor.payload(now)

    async def _stay_connected(self) -> None:
        """Connect, serve the PUBACKs, and after a loss connect again with a doubling delay."""
        delay = self.reconnect_min_s
        where = f"{self.address.host}:{self.address.port}"
        while True:
            try:
                session, _early = await open_session(self.url, self._options)
            except TransportError as exc:
                log.debug("MQTT sensor simulator cannot connect to %s: %s", where, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            delay = self.reconnect_min_s
            self._session = session
            self._set_connected(True, "")
            polite = True
            try:
                await session.serve_acks(on_puback=self._count_ack)
            except TransportError as exc:
                polite = False
                self._set_connected(False, str(exc))
            finally:
                self._session = None
                self.connected = False
                await session.close(polite=polite)

    def _set_connected(self, connected: bool, reason: str) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        where = f"{self.address.host}:{self.address.port}"
        if connected:
            self.connects += 1
            if self.connects == 1:
                log.info("MQTT sensor simulator connected to %s", where)
            else:
                log.info("MQTT sensor simulator recovered connection to %s", where)
        else:
            log.warning("MQTT sensor simulator lost connection to %s (%s)", where, reason)

    def _count_ack(self, _packet_id: int) -> None:
        self.published += 1
