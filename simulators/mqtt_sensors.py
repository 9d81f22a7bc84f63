"""Simulated MQTT temperature/humidity sensors in the formats real firmware publishes.

Zigbee2MQTT devices, Tasmota plugs with a probe, Shelly Plus H&T (``<id>/events/rpc``
NotifyStatus), ESPHome nodes (one plain-text ``<node>/sensor/<name>/state`` topic per quantity),
RuuviTags heard by a Ruuvi Gateway (data format 5 advertisements, the sequence counter counting
up) and ShelfSense's own JSON. :class:`MqttSensorSimulator` publishes, every ``interval_s``, one
QoS 1 message per sensor in that sensor's firmware format (:mod:`devices.mqtt_formats`).
It uses paho-mqtt 2.x with ``loop_start``: paho's network thread reconnects on its own after a
broker restart (``reconnect_delay_set``); the simulator only publishes while connected, like a
Zigbee2MQTT bridge whose broker is away (counted in ``skipped_offline``).

paho callbacks run on paho's thread; they reach the event loop only via ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.mqtt_formats import esphome_quantity
from devices.mqtt_registry import Encoder, SimSample, mqtt_format, sim_format_names

log = logging.getLogger(__name__)

# What broken firmware, a truncated radio packet or a misconfigured bridge put on the wire.
MALFORMED_PAYLOADS: tuple[bytes, ...] = (
    b'{"temperature": 4.2, "humidity":',
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'{"temperature": "warm"}',
)
MAX_QUEUED_MESSAGES = 100


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
        self.sensors = list(sensors)
        self.interval_s = interval_s
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or "",
            protocol=mqtt.MQTTv311,
        )
        # paho doubles the delay from min to max after each failed attempt (whole seconds only).
        self._client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)
        self._client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        if self.address.username:
            self._client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._loop: asyncio.AbstractEventLoop | None = None
        self._malformed_next = 0
        self._started = False
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
        self._loop = loop
        self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()
        self._started = True
        try:
            next_tick = loop.time()
            while True:
                self.publish_once()
                next_tick = max(next_tick + self.interval_s, loop.time())
                await asyncio.sleep(next_tick - loop.time())
        finally:
            self.close()

    def publish_once(self) -> int:
        """Publish one message per sensor now (if connected); returns how many were handed to paho."""
        if not self.connected:
            self.skipped_offline += len(self.sensors)
            return 0
        now = datetime.now(UTC)
        handed = 0
        for sensor in self.sensors:
            payload = self._next_payload(sensor, now)
            info = self._client.publish(sensor.topic, payload, qos=1)
            self.publish_attempts += 1
            if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                handed += 1  # NO_CONN: queued by paho, sent after the reconnect
            # MQTT_ERR_QUEUE_SIZE: paho's bounded queue is full, the message is dropped.
        return handed

    def close(self) -> None:
        """Disconnect and stop paho's thread (idempotent)."""
        if self._started:
            self._started = False
            self._client.disconnect()
            self._client.loop_stop()
        self._loop = None
        self.connected = False

    # --------------------------------------------------------------- internals

    def _next_payload(self, sensor: SimulatedMqttSensor, now: datetime) -> bytes:
        if self._malformed_next > 0:
            self._malformed_next -= 1
            payload = MALFORMED_PAYLOADS[self.malformed_sent % len(MALFORMED_PAYLOADS)]
            self.malformed_sent += 1
            return payload
        return sensor.payload(now)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Hand a paho-thread event to the event loop (dropped once the simulator is closed)."""
        loop = self._loop
        if loop is None:
            return
        # RuntimeError: the loop closed between the check and the call; the simulator is gone.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    # paho thread ----------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._post(self._set_connected, not reason.is_failure, str(reason))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._post(self._set_connected, False, str(reason))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._post(self._count_ack)

    # event loop -----------------------------------------------------------
    def _set_connected(self, connected: bool, reason: str) -> None:
        if connected == self.connected or not self._started:
            return  # no change, or a late event from before close()
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

    def _count_ack(self) -> None:
        self.published += 1
