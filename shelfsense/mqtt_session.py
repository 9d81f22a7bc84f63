"""The project's one MQTT client: an asyncio session on the sans-I/O :mod:`devices.mqtt_packets`.

Standard library and our codec only, so every role may import it (edge, cloud, simulators: see
docs/architecture.md). It knows MQTT, not sensors:

* :func:`open_session` -- TCP (TLS for ``mqtts://``), CONNECT, CONNACK; a refused, unreachable or
  silent broker is a :class:`~devices.errors.TransportError`, and the socket never leaks.
* :class:`MqttSession` -- one connection: :meth:`~MqttSession.read` (one 64 KiB read framed in one
  pass), :meth:`~MqttSession.keepalive` (PINGREQ every half keep-alive; a broker silent for 1.5
  keep-alives is gone, counted only while someone reads), :meth:`~MqttSession.handle_control`
  (PUBREL -> PUBCOMP, a broker's DISCONNECT, PUBACKs of our own publishes resolve
  :meth:`~MqttSession.publish_acked`), :meth:`~MqttSession.ack` (PUBACK / PUBREC in the order given),
  :meth:`~MqttSession.close`, :meth:`~MqttSession.abort`.
* :class:`ReceiveWindow` -- at most N messages received and not yet acknowledged; the receive loop
  waits on it, so TCP flow control pushes back on the broker.
* :class:`MqttPublisher` -- a connection kept for publishing with awaited PUBACKs (the cloud's alert
  channel): connects on demand, reads its acknowledgements, reconnects on the next publish after a loss.

Reconnecting a subscriber is its owner's business (the edge: :func:`edge.supervisor.supervise`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from devices.errors import DecodeError, TransportError
from devices.mqtt_packets import (
    DEFAULT_MAX_PACKET_BYTES,
    MQTT_V5,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    Ack,
    Connack,
    Disconnect,
    MqttPacketDecoder,
    Packet,
    Publish,
    Suback,
    encode_ack,
    encode_connect,
    encode_disconnect,
    encode_pingreq,
    encode_publish,
    encode_subscribe,
)

__all__ = [
    "READ_BYTES",
    "MqttEndpoint",
    "MqttPublisher",
    "MqttSession",
    "ReceiveWindow",
    "SessionOptions",
    "open_session",
]

log = logging.getLogger(__name__)

READ_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> MqttEndpoint:
        """``mqtts://host[:8883]`` is TLS, anything else plain TCP (``mqtt://host[:1883]``); no host:
        this machine. (Callers that must refuse other schemes check them: cloud.notify.mqtt.)"""
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """What CONNECT says: ``clean_start=False`` resumes the broker's session (QoS 1 redelivery)."""

    client_id: str
    version: int = MQTT_V5
    keepalive_s: int = 30
    clean_start: bool = False
    username: str | None = None
    password: str | None = None
    session_expiry_s: int = 0
    receive_maximum: int = 65535
    connect_timeout_s: float = 10.0
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES


@dataclass
class ReceiveWindow:
    """Messages received and not yet acknowledged; the receive loop waits while it is full."""

    size: int
    used: int = 0
    room: asyncio.Event = field(default_factory=asyncio.Event)

    async def take(self, count: int) -> None:
        """Count ``count`` more messages in hand, then wait until there is room for another read:
        so a read starts only below the window, and what is held is the window plus one read."""
        self.used += count
        while self.used >= self.size:
            self.room.clear()
            await self.room.wait()

    def give(self, count: int) -> None:
        self.used -= count
        if self.used < self.size:
            self.room.set()


class MqttSession:
    """One open connection (after CONNACK); see the module docstring."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, options: SessionOptions
    ) -> None:
        self.reader, self.writer, self.options = reader, writer, options
        self.version = options.version
        self.decoder = MqttPacketDecoder(options.version, options.max_packet_bytes)
        self.last_received = asyncio.get_running_loop().time()
        self.reading = False  # a read waits on the socket (not on the owner's window)
        self.connack: Connack | None = None
        self._next_packet_id = 1
        self._waiters: dict[int, asyncio.Future[None]] = {}  # our QoS 1 publishes awaiting PUBACK

    @property
    def closing(self) -> bool:
        return self.writer.is_closing()

    def packet_id(self) -> int:
        self._next_packet_id = self._next_packet_id % 0xFFFF + 1
        return self._next_packet_id

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def flush(self) -> None:
        try:
            await self.writer.drain()
        except (OSError, RuntimeError) as exc:  # ConnectionResetError, or a closed transport
            raise TransportError(f"MQTT connection lost while sending: {exc}") from exc

    async def read(self) -> list[Packet]:
        self.reading = True
        try:
            data = await self.reader.read(READ_BYTES)
        except OSError as exc:
            raise TransportError(f"MQTT connection lost: {exc}") from exc
        finally:
            self.reading = False
        if not data:
            raise TransportError("MQTT connection lost: the broker closed it")
        self.last_received = asyncio.get_running_loop().time()
        try:
            return self.decoder.feed(data)
        except DecodeError as exc:
            raise TransportError(f"MQTT protocol error from the broker: {exc}") from exc

    def subscribe(self, packet_id: int, topics: list[tuple[str, int]]) -> None:
        self.send(encode_subscribe(packet_id, topics, version=self.version))

    def publish(self, topic: str, payload: bytes, qos: int = 1, *, retain: bool = False) -> int:
        """Send a PUBLISH; returns its packet id (0 for QoS 0). Not awaited: fire and forget."""
        packet_id = self.packet_id() if qos else 0
        self.send(
            encode_publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain, version=self.version)
        )
        return packet_id

    async def publish_acked(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1 PUBLISH that returns once the broker's PUBACK arrived (someone must be reading:
        :meth:`handle_control` resolves it)."""
        packet_id = self.packet_id()
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[packet_id] = acked
        try:
            self.send(
                encode_publish(
                    topic, payload, qos=1, packet_id=packet_id, retain=retain, version=self.version
                )
            )
            await self.flush()
            await acked
        finally:
            self._waiters.pop(packet_id, None)

    def handle_control(
        self,
        packets: Sequence[Packet],
        on_suback: Callable[[Suback], None] | None = None,
        on_puback: Callable[[int], None] | None = None,
    ) -> None:
        """The broker's non-PUBLISH packets; a DISCONNECT raises TransportError. ``on_puback``
        hears the PUBACKs of fire-and-forget :meth:`publish` calls (a simulator counts them)."""
        for packet in packets:
            if isinstance(packet, Disconnect):
                detail = f" ({packet.reason_string})" if packet.reason_string else ""
                raise TransportError(f"broker disconnected us: reason {packet.reason_code}{detail}")
            if isinstance(packet, Ack):
                if packet.kind == PUBREL:  # QoS 2, second half
                    self.send(encode_ack(PUBCOMP, packet.packet_id))
                elif packet.kind == PUBACK:
                    waiter = self._waiters.get(packet.packet_id)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
                    elif waiter is None and on_puback is not None:
                        on_puback(packet.packet_id)
            elif isinstance(packet, Suback) and on_suback is not None:
                on_suback(packet)
            # PINGRESP: last_received already says the broker is there.

    def ack(self, messages: list[Publish]) -> None:
        """PUBACK (QoS 1) / PUBREC (QoS 2) for ``messages``, in their order (MQTT requires it)."""
        acks = [encode_ack(PUBACK if m.qos == 1 else PUBREC, m.packet_id) for m in messages if m.qos]
        if acks:
            self.send(b"".join(acks))

    async def keepalive(self) -> None:
        """PINGREQ every half keep-alive; raises TransportError once the broker is silent for 1.5
        keep-alives while a read waits (while the owner holds back reading, nobody reads answers)."""
        loop = asyncio.get_running_loop()
        keepalive_s = self.options.keepalive_s
        while True:
            await asyncio.sleep(keepalive_s / 2)
            if self.reading and loop.time() - self.last_received > 1.5 * keepalive_s:
                raise TransportError(f"MQTT broker silent for {1.5 * keepalive_s:.0f} s")
            self.send(encode_pingreq())

    async def serve_acks(self, on_puback: Callable[[int], None] | None = None) -> None:
        """For a client that only publishes: read the broker's answers and keep the connection
        alive until it fails (raises TransportError); cancel it to stop."""
        keepalive = asyncio.create_task(self.keepalive())
        reading: asyncio.Future[list[Packet]] | None = None
        try:
            while True:
                reading = asyncio.ensure_future(self.read())
                done, _ = await asyncio.wait({reading, keepalive}, return_when=asyncio.FIRST_COMPLETED)
                if keepalive in done:
                    keepalive.result()  # raises: the broker went silent
                packets = [p for p in reading.result() if not isinstance(p, Publish)]
                self.handle_control(packets, on_puback=on_puback)
        finally:
            keepalive.cancel()
            if reading is not None:
                reading.cancel()

    def abort(self) -> None:
        """Drop the TCP connection WITHOUT a DISCONNECT packet, as a power cut or cable pull would:
        the broker keeps the session and redelivers unacknowledged messages."""
        self.writer.transport.abort()

    async def close(self, *, polite: bool = True) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(TransportError("MQTT connection closed before the PUBACK"))
        if polite and not self.writer.is_closing():
            self.send(encode_disconnect())  # a clean DISCONNECT keeps the session
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()


async def open_session(url: str, options: SessionOptions) -> tuple[MqttSession, list[Packet]]:
    """Connect and wait for CONNACK; returns the session and packets that came along with it (a
    resumed session's messages may follow at once). Raises TransportError, never leaks the socket."""
    try:
        endpoint = MqttEndpoint.from_url(url)
        async with asyncio.timeout(options.connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=ssl.create_default_context() if endpoint.tls else None,
                limit=READ_BYTES,
            )
    except (OSError, TimeoutError, ValueError) as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError)
        raise TransportError(f"cannot connect to {url}: {exc or 'timed out'}") from exc
    session = MqttSession(reader, writer, options)
    try:
        session.send(_connect_packet(options))
        async with asyncio.timeout(options.connect_timeout_s):
            connack, early = await _read_until_connack(session)
    except BaseException as exc:  # timeout, refusal, cancellation: never leak the socket
        await session.close(polite=False)
        if isinstance(exc, TimeoutError):
            raise TransportError(f"no CONNACK from {url} within {options.connect_timeout_s} s") from exc
        raise
    if not connack.accepted:
        await session.close(polite=False)
        detail = f" ({connack.reason_string})" if connack.reason_string else ""
        raise TransportError(f"broker refused the connection: code {connack.reason_code}{detail}")
    session.connack = connack
    return session, early


def _connect_packet(options: SessionOptions) -> bytes:
    return encode_connect(
        options.client_id,
        version=options.version,
        keepalive_s=options.keepalive_s,
        clean_start=options.clean_start,
        username=options.username,
        password=options.password,
        session_expiry_s=options.session_expiry_s,
        receive_maximum=options.receive_maximum,
    )


async def _read_until_connack(session: MqttSession) -> tuple[Connack, list[Packet]]:
    while True:
        packets = await session.read()
        for i, packet in enumerate(packets):
            if isinstance(packet, Connack):
                return packet, packets[i + 1 :]
        if any(isinstance(p, Disconnect) for p in packets):
            raise TransportError("broker closed the connection before CONNACK")


class MqttPublisher:
    """A publishing connection with awaited PUBACKs, opened on demand and again after a loss.

    One background task reads the broker's answers (PUBACKs, PINGRESPs) and keeps the connection
    alive; when it fails, the next :meth:`publish` connects afresh.
    """

    def __init__(self, url: str, options: SessionOptions) -> None:
        self.url, self.options = url, options
        self._session: MqttSession | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.closing and self._reader is not None

    async def connect(self) -> MqttSession:
        async with self._lock:
            if self._session is not None and self._reader is not None and not self._reader.done():
                return self._session
            await self._drop()
            session, early = await open_session(self.url, self.options)
            session.handle_control([p for p in early if not isinstance(p, Publish)])
            self._session = session
            self._reader = asyncio.create_task(self._read(session), name="mqtt-publisher-read")
            log.info("MQTT publisher connected to %s", MqttEndpoint.from_url(self.url).host)
            return session

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and, for QoS 1, wait for the PUBACK (the caller bounds the wait). Raises
        TransportError when the broker is unreachable or the connection drops meanwhile."""
        session = await self.connect()
        if qos == 0:
            session.publish(topic, payload, qos=0)
            await session.flush()
            return
        await session.publish_acked(topic, payload)

    async def _read(self, session: MqttSession) -> None:
        try:
            await session.serve_acks()
        except TransportError as exc:
            log.warning("MQTT publisher lost its connection to %s: %s", self.url, exc)
            await session.close(polite=False)  # fails the publishes still waiting for a PUBACK

    async def _drop(self) -> None:
        reader, self._reader = self._reader, None
        session, self._session = self._session, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if session is not None:
            await session.close()

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()
