"""MQTT sensors (zigbee2mqtt, Tasmota, ...) over asyncio streams, at-least-once into the outbox.

Delivery guarantee: the broker keeps our session (fixed client id, ``clean_start=False``, MQTT v5
``SessionExpiryInterval``; v3.1.1: clean session 0) and QoS 1 subscriptions. A PUBLISH is
acknowledged (PUBACK, or PUBREC for QoS 2) only after its readings are committed to the outbox,
and acknowledgements go out in arrival order, as MQTT requires. A message received but not yet
committed when the edge dies or the link drops is redelivered by the broker on reconnect.
Poison messages never stop the edge: a payload that does not decode (malformed JSON, a 400-digit
temperature, a reading the contract refuses) or a PUBLISH over the packet size limit (read past by
the decoder) is counted, kept in the bounded reject store (:mod:`edge.rejects`, shown by
``shelfsense edge status``), dropped, and acknowledged, so the broker stops redelivering it.

Exactly once: a message committed but not yet acknowledged when the edge, the link or the broker
died is redelivered (DUP set, same packet id). Each commit records receipts of its messages in the
same transaction (:mod:`edge.receipts`); a redelivery that has one is acknowledged, not stored again.

The MQTT session (connect, keep-alive, acknowledgements, receive window) is the project's one MQTT
client, :mod:`shelfsense.mqtt_session` (the wire format :mod:`devices.mqtt_packets`, sans-I/O, on an
asyncio stream in the event loop: no client thread, no per-message hand-over); this module is the
sensor side: subscriptions, decoding, receipts, commits and the order of acknowledgements.
paho-mqtt's receive path (one ``recv`` per packet field, a ``Properties`` object per message, a
thread hop) was ~45% of the edge's CPU at 20k messages/s; framing a 64 KiB read in one pass costs
a few microseconds per message.

Backpressure: at most ``queue_max`` messages are received and not yet acknowledged. When the
outbox falls behind (slow disk) the receive loop stops reading the socket, TCP flow control pushes
back, and the broker queues the messages in our persistent session instead of us buffering without
bound. MQTT 5's Receive Maximum tells the broker the same limit, but the window does not rely on it:
Mosquitto 2.0.11 honours it only until the first PUBACK (measured), and a 3.1.1 broker has only
its own in-flight cap (Mosquitto's ``max_inflight_messages``, default 20, must be raised: see
docs/edge.md). What the edge holds is at most the window plus one read (64 KiB).

Reconnecting is left to :func:`edge.supervisor.supervise`: each :meth:`MqttTransport.run` opens a
fresh connection with the same client id and ends with :class:`TransportError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from devices.errors import TransportError
from devices.mqtt_packets import (
    DEFAULT_MAX_PACKET_BYTES,
    MQTT_V5,
    MQTT_V311,
    Connack,
    Packet,
    Publish,
    Suback,
)
from edge import receipts
from edge.clock import Clock
from edge.outbox import Outbox
from edge.receipts import Receipts
from edge.rejects import Rejects
from edge.supervisor import DeviceHealthState
from edge.transports.mqtt_intake import MqttIntake
from edge.transports.protocol import Committed, Emit, Events
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import MqttConfig
from shelfsense.contract import Event
from shelfsense.mqtt_session import READ_BYTES, MqttSession, ReceiveWindow, SessionOptions, open_session

__all__ = ["READ_BYTES", "MqttTransport", "client_id_for"]

log = logging.getLogger(__name__)

BATCH_MAX = 2000  # messages decoded and committed together
PIPELINE_DEPTH = 4  # batches committing at once; with queue_max this bounds unacked messages
SUBSCRIBE_PACKET_ID = 1


def client_id_for(config: MqttConfig, edge_id: str) -> str:
    return config.client_id or f"shelfsense-{edge_id}"


# A batch in the pipeline: its commit (None when it had no readings) and the messages to acknowledge.
_InFlight = tuple["asyncio.Future[Committed] | None", list[Publish], int]  # ..., batch number


class MqttTransport:
    def __init__(
        self,
        config: MqttConfig,
        edge_id: str,
        health: DeviceHealthState,
        emit: Emit,
        *,
        clock: Clock,
        queue_max: int = 4000,
        keepalive_s: int = 30,
        connect_timeout_s: float = 10.0,
        counters: Counter[str] | None = None,
        outbox: Outbox | None = None,
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
    ) -> None:
        self.config = config
        self.client_id = client_id_for(config, edge_id)
        self.health = health
        self.emit = emit  # durable emissions: their futures resolve once committed (then PUBACK)
        self.clock = clock
        self.queue_max = queue_max
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.outbox = outbox  # where receipts are looked up; None: redeliveries are stored again
        self.max_packet_bytes = max_packet_bytes
        self.version = MQTT_V5 if config.protocol == "mqttv5" else MQTT_V311
        self._session: MqttSession | None = None
        self._had_session = False
        self.intake = MqttIntake(config.sensors, health, self.counters, max_packet_bytes)
        self._batches = 0  # numbers the batches, for the intake's memory of device times

    # ------------------------------------------------------------------ public helpers

    @property
    def connected(self) -> bool:
        """Connected to the broker (CONNACK received) right now."""
        return self._session is not None and not self._session.closing

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Send a PUBLISH on the current connection (call from the event loop); False if offline.

        QoS 1 is fire-and-forget here: the broker's PUBACK is not awaited, and a publish lost with
        the connection is not resent (alarms are in the outbox for the cloud anyway).
        """
        session = self._session
        if session is None or session.closing:
            return False
        session.publish(topic, payload, qos)
        return True

    def abort(self) -> None:
        """Drop the TCP connection WITHOUT a DISCONNECT packet, as a power cut or cable pull would.

        The broker keeps the session and will redeliver unacknowledged messages on reconnect.
        """
        if self._session is not None:
            self._session.abort()

    # ------------------------------------------------------------------ connection

    async def run(self) -> None:
        """Connect, subscribe, and process messages until the connection fails (TransportError)."""
        session, early = await self._open()
        self._session = session
        window = ReceiveWindow(self.queue_max)
        batches: asyncio.Queue[list[Publish]] = asyncio.Queue()  # bounded by the window
        in_flight: asyncio.Queue[_InFlight] = asyncio.Queue(maxsize=PIPELINE_DEPTH)
        commits: set[asyncio.Future[Committed]] = set()
        self.health.mark_connected()
        tasks = [
            asyncio.create_task(self._receive(session, early, window, batches)),
            asyncio.create_task(session.keepalive()),
            asyncio.create_task(self._decode_batches(batches, in_flight, commits)),
            asyncio.create_task(self._ack_in_order(session, in_flight, window, self.intake.device_times)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # TransportError, an outbox failure or a bug: propagate it
            raise TransportError("MQTT session ended")  # unreachable: the tasks loop forever
        finally:
            self._session = None
            self.intake.device_times.forget_unconfirmed()  # their messages come again, or were committed
            pending: list[asyncio.Future[Committed] | asyncio.Task[None]] = [*tasks, *commits]
            for future in pending:
                future.cancel()
            # A commit cancelled here may still land: its messages are redelivered (at-least-once).
            await asyncio.gather(*pending, return_exceptions=True)
            await session.close()

    async def _open(self) -> tuple[MqttSession, list[Packet]]:
        """Connect (shelfsense.mqtt_session), note the broker's session, SUBSCRIBE; returns
        packets that came along with the CONNACK."""
        cfg = self.config
        options = SessionOptions(
            self.client_id,
            version=self.version,
            keepalive_s=self.keepalive_s,
            clean_start=False,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            session_expiry_s=cfg.session_expiry_s,
            # At most this many unacknowledged messages in flight to us: what the window holds.
            receive_maximum=max(1, min(self.queue_max, 65535)),
            connect_timeout_s=self.connect_timeout_s,
            max_packet_bytes=self.max_packet_bytes,
        )
        session, early = await open_session(cfg.url, options)
        assert session.connack is not None
        self._note_session(session.connack)
        topics = [(sensor.topic, 1) for sensor in cfg.sensors]
        if topics:  # re-subscribing is idempotent and covers a broker that lost our session
            session.subscribe(SUBSCRIBE_PACKET_ID, topics)
        return session, early

    def _note_session(self, connack: Connack) -> None:
        if self._had_session and not connack.session_present:
            log.warning(
                "MQTT broker %s had no session for %s: messages sent while the edge was away are lost "
                "(broker restarted without persistence, or session expired)",
                self.config.url,
                self.client_id,
            )
        self._had_session = True

    # ------------------------------------------------------------------ receiving

    async def _receive(
        self,
        session: MqttSession,
        early: list[Packet],
        window: ReceiveWindow,
        batches: asyncio.Queue[list[Publish]],
    ) -> None:
        packets = early
        while True:
            publishes = [p for p in packets if isinstance(p, Publish)]
            if len(publishes) != len(packets):
                control = [p for p in packets if not isinstance(p, Publish)]
                session.handle_control(control, self._on_suback)
            if publishes:
                batches.put_nowait(publishes)
                await window.take(len(publishes))  # stop reading while too many are unacknowledged
            packets = await session.read()

    def _on_suback(self, packet: Suback) -> None:
        codes = zip(self.config.sensors, packet.reason_codes, strict=False)
        refused = [sensor.topic for sensor, code in codes if code >= 0x80]
        if refused:
            log.error("MQTT broker refused the subscription to %s (ACL?)", ", ".join(refused))

    # ------------------------------------------------------------------ processing

    async def _already_committed(self, batch: list[Publish]) -> set[int]:
        """``id()`` of the redeliveries in ``batch`` whose first delivery was committed (receipts)."""
        redelivered = [m for m in batch if m.dup and m.qos]
        if not redelivered or self.outbox is None:
            return set()
        # Barrier: commits of an earlier connection may still be queued in the writer (cancelled
        # futures, but their rows land). An empty durable emission resolves after all of them.
        await self.emit(Events([], durable=True))
        ids = [m.packet_id for m in redelivered]
        found = await self.outbox.read("read MQTT receipts", lambda db: receipts.committed(db, ids))
        return {id(m) for m in redelivered if found.get(m.packet_id) == receipts.digest(m.topic, m.payload)}

    async def _decode_batches(
        self,
        batches: asyncio.Queue[list[Publish]],
        in_flight: asyncio.Queue[_InFlight],
        commits: set[asyncio.Future[Committed]],
    ) -> None:
        """Decode and hand batches to the outbox while earlier ones are still committing.

        Up to ``PIPELINE_DEPTH`` batches are in the writer at once (it group-commits them), so the
        edge never idles during an fsync; the acker acknowledges each only after its own commit.
        """
        while True:
            batch = await batches.get()
            while not batches.empty() and len(batch) < BATCH_MAX:
                batch += batches.get_nowait()
            received_at = self.clock.now()
            duplicates = await self._already_committed(batch)
            events: list[Event] = []
            rejects = Rejects()
            ok = 0
            for msg in batch:
                if duplicates and id(msg) in duplicates:
                    continue
                readings = self.intake.decode(msg, received_at, rejects)
                if readings is not None:
                    events += readings
                    ok += 1
            self.counters["mqtt_messages"] += len(batch)
            if duplicates:
                self.counters["mqtt_redelivered_duplicates"] += len(duplicates)
            if ok:
                self.health.frame_ok(ok, received_at)
            commit = None
            if events or rejects.items:  # durable before PUBACK, with the receipts of the batch
                committed = Receipts(
                    [(m.packet_id, receipts.digest(m.topic, m.payload)) for m in batch if m.qos]
                )
                commit = self.emit(Events(events, durable=True, extras=(committed, rejects)))
                commits.add(commit)
                commit.add_done_callback(commits.discard)
            self._batches += 1
            self.intake.device_times.end_batch(self._batches)
            await in_flight.put((commit, batch, self._batches))

    @staticmethod
    async def _ack_in_order(
        session: MqttSession,
        in_flight: asyncio.Queue[_InFlight],
        window: ReceiveWindow,
        device_times: receipts.DeviceTimes,
    ) -> None:
        while True:
            commit, batch, number = await in_flight.get()
            if commit is not None:
                await commit  # durable: PUBACK only once the batch's readings are committed
            device_times.confirm(number)
            session.ack(batch)
            window.give(len(batch))
            await session.flush()


MQTT_DEVICE_ID = "mqtt"


def _build(wiring: DeviceWiring, config: MqttConfig) -> Device:
    health = DeviceHealthState(MQTT_DEVICE_ID)
    transport = MqttTransport(
        config,
        wiring.edge.edge_id,
        health,
        wiring.emit,
        clock=wiring.clock,
        counters=wiring.counters,
        outbox=wiring.outbox,
    )
    return MQTT_DEVICE_ID, health, transport


register_transport("mqtt", "mqtt", _build)
