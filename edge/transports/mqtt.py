"""MQTT sensors (zigbee2mqtt, Tasmota, ...) via paho-mqtt 2.x, with at-least-once into the outbox.

Delivery guarantee: the broker keeps our session (fixed client id, ``clean_start=False``, MQTT v5
``SessionExpiryInterval``; v3.1.1: ``clean_session=False``) and QoS 1 subscriptions. With
``manual_ack=True`` paho does not PUBACK on receipt: each message is decoded, its readings are
committed to the outbox, and only THEN is ``client.ack(mid, qos)`` sent. A message received but not
yet committed when the edge dies or the link drops is redelivered by the broker on reconnect.
Malformed payloads are counted, acked (redelivering them would not help) and dropped.
Duplicates are possible (at-least-once) and harmless: the ledger keeps the newest value.

Threading: paho runs its network loop in its own thread. ``on_message`` hands each message to
asyncio with ``loop.call_soon_threadsafe``. The hand-over is bounded by a semaphore of
``queue_max`` slots; when asyncio falls behind (slow disk) the paho thread BLOCKS in ``on_message``
until a slot frees up. That is deliberate backpressure: paho stops reading the socket, TCP flow
control pushes back, and the broker queues the messages in our persistent session instead of us
buffering without bound. (A block longer than 1.5 x keepalive makes the broker drop the link;
unacked messages are then redelivered, nothing is lost.) One consumer task processes messages in
arrival order and PUBACKs in that order, as MQTT requires.

Reconnecting is left to :func:`edge.supervisor.supervise` (paho's own reconnect is disabled):
each :meth:`MqttTransport.run` uses a fresh paho client with the same client id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.errors import DecodeError, TransportError
from devices.mqtt_formats import decode_payload
from edge.clock import utcnow
from edge.supervisor import DeviceHealthState
from edge.transports import EventSink, measurements_to_readings
from shelfsense.config import MqttConfig, MqttSensorConfig
from shelfsense.contract import Event

log = logging.getLogger(__name__)

TOPIC_CACHE_MAX = 10_000
BATCH_MAX = 500  # messages decoded and committed together
PIPELINE_DEPTH = 4  # batches committing at once; with queue_max this bounds unacked messages


@dataclass(frozen=True, slots=True)
class MqttMessage:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime


def client_id_for(config: MqttConfig, edge_id: str) -> str:
    return config.client_id or f"shelfsense-{edge_id}"


class MqttTransport:
    def __init__(
        self,
        config: MqttConfig,
        edge_id: str,
        health: DeviceHealthState,
        sink: EventSink,
        *,
        queue_max: int = 4000,
        keepalive_s: int = 30,
        connect_timeout_s: float = 10.0,
        counters: Counter[str] | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id_for(config, edge_id)
        self.health = health
        self.sink = sink
        self.queue_max = queue_max
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self._client: paho.Client | None = None
        self._connected = threading.Event()
        self._topic_cache: dict[str, MqttSensorConfig | None] = {}

    # ------------------------------------------------------------------ public helpers

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Queue a publish on the current connection (thread-safe in paho); False if offline."""
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        return client.publish(topic, payload, qos=qos).rc == paho.MQTT_ERR_SUCCESS

    def abort(self) -> None:
        """Drop the TCP connection WITHOUT a DISCONNECT packet, as a power cut or cable pull would.

        The broker keeps the session and will redeliver unacknowledged messages on reconnect.
        """
        client = self._client
        sock = client.socket() if client is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------ connection

    def _make_client(self) -> paho.Client:
        cfg = self.config
        v5 = cfg.protocol == "mqttv5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password else None
            client.username_pw_set(cfg.username, password)
        if urlsplit(cfg.url).scheme == "mqtts":
            client.tls_set_context(ssl.create_default_context())
        return client

    def _connect_blocking(self, client: paho.Client) -> None:
        url = urlsplit(self.config.url)
        host = url.hostname or "127.0.0.1"
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        if self.config.protocol == "mqttv5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.config.session_expiry_s
            # At most this many unacknowledged messages in flight to us: what the hand-over holds,
            # so the paho thread never has to block for room (the broker's own cap, Mosquitto's
            # max_inflight_messages, default 20, must be raised too: see docs/edge.md).
            props.ReceiveMaximum = max(1, min(self.queue_max, 65535))
            client.connect(host, port, self.keepalive_s, clean_start=False, properties=props)
        else:
            client.connect(host, port, self.keepalive_s)

    async def run(self) -> None:
        """Connect, subscribe, and process messages until the connection fails (TransportError)."""
        loop = asyncio.get_running_loop()
        client = self._make_client()
        queue: asyncio.Queue[MqttMessage] = asyncio.Queue()  # bounded by `slots`
        slots = threading.Semaphore(self.queue_max)
        closing = threading.Event()
        connected: asyncio.Future[None] = loop.create_future()
        failed: asyncio.Future[None] = loop.create_future()

        def resolve(future: asyncio.Future[None], exc: BaseException | None = None) -> None:
            if not future.done():
                if exc is None:
                    future.set_result(None)
                else:
                    future.set_exception(exc)

        def from_paho(future: asyncio.Future[None], exc: BaseException | None = None) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop is already closed
                loop.call_soon_threadsafe(resolve, future, exc)

        def on_connect(c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                from_paho(failed, TransportError(f"broker refused the connection: {reason}"))
                return
            # Re-subscribing is idempotent and covers a broker that lost our session.
            topics = [(sensor.topic, 1) for sensor in self.config.sensors]
            if topics:
                c.subscribe(topics)
            self._connected.set()
            from_paho(connected)

        def on_disconnect(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            self._connected.clear()
            from_paho(failed, TransportError(f"MQTT connection lost: {reason}"))

        # Hand-over in bulk: paho appends to a deque and wakes the loop only when no wake-up is
        # pending. One call_soon_threadsafe per message (a self-pipe write and a loop iteration
        # each) was a tenth of the edge's CPU at a few thousand messages per second.
        arrived: collections.deque[MqttMessage] = collections.deque()
        wake_pending = threading.Event()

        def hand_over() -> None:
            wake_pending.clear()  # before draining: a message appended from now on wakes us again
            while arrived:
                queue.put_nowait(arrived.popleft())

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            # Block (backpressure) until asyncio has room; give up only when this run is over,
            # in which case the message stays unacked and the broker redelivers it.
            while not slots.acquire(timeout=0.5):
                if closing.is_set():
                    return
            arrived.append(MqttMessage(msg.topic, bytes(msg.payload), msg.mid, msg.qos, utcnow()))
            if not wake_pending.is_set():
                wake_pending.set()
                try:
                    loop.call_soon_threadsafe(hand_over)
                except RuntimeError:  # the loop is closed: this run is over, nothing will be acked
                    wake_pending.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        self._client = client
        consumer: asyncio.Task[None] | None = None
        try:
            try:
                await asyncio.to_thread(self._connect_blocking, client)
            except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
                raise TransportError(f"cannot connect to {self.config.url}: {exc}") from exc
            client.loop_start()
            await self._wait_connected(connected, failed)
            self.health.mark_connected()
            consumer = asyncio.create_task(self._consume(client, queue, slots))
            await asyncio.wait({failed, consumer}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()  # an outbox failure or a bug: propagate it
            failed.result()
        finally:
            closing.set()
            self._connected.clear()
            if consumer is not None:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            await asyncio.to_thread(self._shutdown, client)
            self._client = None
            if failed.done() and not failed.cancelled():
                failed.exception()  # our own clean DISCONNECT also reports "lost": mark it seen

    async def _wait_connected(self, connected: asyncio.Future[None], failed: asyncio.Future[None]) -> None:
        done, _ = await asyncio.wait(
            {connected, failed}, timeout=self.connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if failed in done:
            failed.result()
        if connected not in done:
            raise TransportError(f"no CONNACK from {self.config.url} within {self.connect_timeout_s} s")

    @staticmethod
    def _shutdown(client: paho.Client) -> None:
        client.disconnect()  # a clean DISCONNECT (keeps the session); a no-op if already down
        client.loop_stop()

    # ------------------------------------------------------------------ processing

    def _sensor_for(self, topic: str) -> MqttSensorConfig | None:
        # paho's topic_matches_sub builds a matcher tree per call: with 50 sensors that linear scan
        # was a quarter of the edge's CPU at 2k msg/s. Topics repeat, so remember the answer
        # (bounded: a flood of distinct unknown topics only clears the cache).
        try:
            return self._topic_cache[topic]
        except KeyError:
            pass
        found = next((s for s in self.config.sensors if paho.topic_matches_sub(s.topic, topic)), None)
        if len(self._topic_cache) >= TOPIC_CACHE_MAX:
            self._topic_cache.clear()
        self._topic_cache[topic] = found
        return found

    def _decode(self, msg: MqttMessage) -> list[Event]:
        sensor = self._sensor_for(msg.topic)
        self.counters["mqtt_messages"] += 1
        if sensor is None:
            self.counters["mqtt_unknown_topic"] += 1
            return []
        try:
            measurements = decode_payload(sensor.format, msg.topic, msg.payload, quantity=sensor.quantity)
        except DecodeError as exc:
            self.counters["mqtt_malformed"] += 1
            self.health.frame_bad()
            log.debug("dropping malformed payload on %s: %s", msg.topic, exc)
            return []
        self.health.frame_ok(1, msg.received_at)
        return list(measurements_to_readings(measurements, sensor.sensor_id, sensor.zone, msg.received_at))

    async def _consume(
        self, client: paho.Client, queue: asyncio.Queue[MqttMessage], slots: threading.Semaphore
    ) -> None:
        """Decode and commit batches while earlier ones are still committing; PUBACK strictly in order.

        Waiting for each commit before decoding the next batch left the edge idle during every
        fsync. Now up to ``PIPELINE_DEPTH`` batches are in the writer at once (it group-commits
        them) and the acker PUBACKs each batch only after its own commit, in arrival order.
        """
        in_flight: asyncio.Queue[tuple[asyncio.Future[object] | None, list[MqttMessage]]]
        in_flight = asyncio.Queue(maxsize=PIPELINE_DEPTH)
        commits: set[asyncio.Future[object]] = set()
        reader = asyncio.create_task(self._decode_batches(queue, in_flight, commits))
        acker = asyncio.create_task(self._ack_in_order(client, in_flight, slots))
        try:
            done, _ = await asyncio.wait({reader, acker}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # an outbox failure or a bug: propagate it (messages stay unacked)
        finally:
            pending: list[asyncio.Future[object] | asyncio.Task[None]] = [reader, acker, *commits]
            for future in pending:
                future.cancel()
            # A commit cancelled here may still land: its messages are redelivered (at-least-once).
            await asyncio.gather(*pending, return_exceptions=True)

    async def _decode_batches(
        self,
        queue: asyncio.Queue[MqttMessage],
        in_flight: asyncio.Queue[tuple[asyncio.Future[object] | None, list[MqttMessage]]],
        commits: set[asyncio.Future[object]],
    ) -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < BATCH_MAX:
                batch.append(queue.get_nowait())
            events = [event for msg in batch for event in self._decode(msg)]
            commit = asyncio.ensure_future(self.sink(events)) if events else None  # durable before PUBACK
            if commit is not None:
                commits.add(commit)
                commit.add_done_callback(commits.discard)
            await in_flight.put((commit, batch))

    @staticmethod
    async def _ack_in_order(
        client: paho.Client,
        in_flight: asyncio.Queue[tuple[asyncio.Future[object] | None, list[MqttMessage]]],
        slots: threading.Semaphore,
    ) -> None:
        while True:
            commit, batch = await in_flight.get()
            if commit is not None:
                await commit
            for msg in batch:
                client.ack(msg.mid, msg.qos)
            slots.release(len(batch))
