"""MQTT 3.1.1 and 5.0 control packets, sans-I/O: the subscriber side an edge gateway needs.

:class:`MqttPacketDecoder` is incremental (``feed(bytes) -> list[packet]``): bytes may arrive split
anywhere, many packets may arrive in one read. It decodes what a broker sends to a subscribing
client (CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT,
AUTH); the ``encode_*`` functions build what such a client sends. MQTT 5 properties are parsed only
where the client needs them (CONNACK and DISCONNECT reason strings, the CONNACK limits); in a
PUBLISH they are skipped, because a subscriber that sets no Topic Alias Maximum needs none of them.

Why not paho: paho parses every PUBLISH in Python one ``recv`` at a time and builds a
``Properties`` object per message; at 20k messages/s that alone was ~45% of the edge's CPU. Here a
64 KiB read is framed in one pass over a ``memoryview``.

A stream that is not MQTT (a bad remaining length, a reserved packet type, a control packet larger
than ``max_packet_bytes``, a PUBLISH whose topic is not UTF-8) raises :class:`DecodeError`: the
connection is unusable after that, so the caller drops it and reconnects (MQTT's own rule for a
malformed packet).

A PUBLISH larger than ``max_packet_bytes`` is well-formed MQTT, just more than a sensor gateway
accepts: dropping the connection for it made the broker redeliver it forever. The decoder reads
past it instead, without buffering its payload, and returns an :class:`OversizedPublish` (topic,
QoS, packet id, size, the first bytes) so the caller can acknowledge, count and report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from devices.errors import DecodeError
from devices.framing import StreamDecoder

__all__ = [
    "MQTT_V5",
    "MQTT_V311",
    "Ack",
    "Connack",
    "Disconnect",
    "MqttPacketDecoder",
    "OversizedPublish",
    "Packet",
    "Pingresp",
    "Publish",
    "Suback",
    "encode_ack",
    "encode_connect",
    "encode_disconnect",
    "encode_pingreq",
    "encode_publish",
    "encode_subscribe",
    "topic_matches",
]

MQTT_V311: Final = 4  # protocol level byte of MQTT 3.1.1
MQTT_V5: Final = 5

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

DEFAULT_MAX_PACKET_BYTES: Final = 1 << 20  # a sensor reading is < 1 KiB; MQTT allows 256 MiB

# MQTT 5 property identifiers this client reads (section 2.2.2.2).
_PROP_RECEIVE_MAXIMUM = 0x21
_PROP_REASON_STRING = 0x1F
_PROP_ASSIGNED_CLIENT_ID = 0x12
_PROP_SESSION_EXPIRY = 0x11
# Identifier -> value type: 1/2/4 = fixed-size integer, "v" = variable byte integer, "s" = UTF-8
# string or binary data (2-byte length prefix), "p" = UTF-8 string pair.
_PROPERTY_TYPES: Final[dict[int, int | str]] = {
    0x01: 1, 0x02: 4, 0x03: "s", 0x08: "s", 0x09: "s", 0x0B: "v", 0x11: 4, 0x12: "s", 0x13: 2,
    0x15: "s", 0x16: "s", 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: "s", 0x1C: "s", 0x1F: "s", 0x21: 2,
    0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x26: "p", 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1,
}  # fmt: skip


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 4x more to build, per message
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int  # 0 for QoS 0 (which has none)
    retain: bool = False
    dup: bool = False


@dataclass(slots=True)
class OversizedPublish(Publish):
    """A PUBLISH over the decoder's size limit: read past; ``payload`` holds only its first bytes."""

    size: int = 0  # the packet's remaining length


OVERSIZED_HEAD_BYTES: Final = 256  # of an oversized payload kept for the report


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool
    reason_code: int  # 3.1.1 return code or 5.0 reason code; 0 = accepted
    receive_maximum: int = 65535
    reason_string: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason_code == 0


@dataclass(frozen=True, slots=True)
class Ack:
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK: the packet type and the id it answers."""

    kind: int
    packet_id: int
    reason_code: int = 0


@dataclass(frozen=True, slots=True)
class Suback:
    packet_id: int
    reason_codes: tuple[int, ...]  # granted QoS 0..2 each, or >= 0x80 for a refused filter


@dataclass(frozen=True, slots=True)
class Pingresp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A broker's DISCONNECT (MQTT 5 only) or AUTH, which this client does not support."""

    reason_code: int
    reason_string: str | None = None


Packet = Publish | Connack | Ack | Suback | Pingresp | Disconnect


# --- encoding ---------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | 0x80 if value else digit)
        if not value:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:
        raise ValueError("MQTT strings are at most 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _varint(len(body)) + body


def _properties(values: list[tuple[int, int, int]]) -> bytes:
    """MQTT 5 properties block from (identifier, size, integer value) triples."""
    body = b"".join(bytes([ident]) + value.to_bytes(size, "big") for ident, size, value in values)
    return _varint(len(body)) + body


def encode_connect(
    client_id: str,
    *,
    version: int = MQTT_V5,
    keepalive_s: int = 60,
    clean_start: bool = False,
    username: str | None = None,
    password: str | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
) -> bytes:
    """CONNECT. ``clean_start=False`` resumes the broker's session for ``client_id`` (3.1.1:
    clean session 0); in MQTT 5 the session outlives the connection by ``session_expiry_s``."""
    flags = 0x02 if clean_start else 0
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    head = _string("MQTT") + bytes([version, flags]) + keepalive_s.to_bytes(2, "big")
    if version == MQTT_V5:
        head += _properties(
            [(_PROP_SESSION_EXPIRY, 4, session_expiry_s), (_PROP_RECEIVE_MAXIMUM, 2, receive_maximum)]
        )
    payload = _string(client_id)
    if username is not None:
        payload += _string(username)
    if password is not None:
        payload += _string(password)
    return _packet(CONNECT << 4, head + payload)


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]], *, version: int = MQTT_V5) -> bytes:
    body = packet_id.to_bytes(2, "big") + (b"\x00" if version == MQTT_V5 else b"")
    body += b"".join(_string(topic) + bytes([qos]) for topic, qos in filters)
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def encode_publish(
    topic: str | bytes, payload: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False,
    version: int = MQTT_V5,
) -> bytes:  # fmt: skip
    body = _string(topic) + (packet_id.to_bytes(2, "big") if qos else b"")
    body += (b"\x00" if version == MQTT_V5 else b"") + payload
    return _packet(PUBLISH << 4 | qos << 1 | int(retain), body)


def encode_ack(kind: int, packet_id: int) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP with success (MQTT 5 lets the reason code be omitted)."""
    return bytes([kind << 4 | (0x02 if kind == PUBREL else 0), 2]) + packet_id.to_bytes(2, "big")


def encode_pingreq() -> bytes:
    return b"\xc0\x00"


def encode_disconnect() -> bytes:
    """A normal DISCONNECT: the broker keeps a persistent session and discards the Will."""
    return b"\xe0\x00"


# --- decoding ---------------------------------------------------------------------------------


class MqttPacketDecoder(StreamDecoder):
    """Incremental decoder of the packets a broker sends to a client (see module docstring).

    ``frames_ok`` counts packets; a stream is never resynchronised (MQTT has no start byte), so a
    malformed packet raises instead of counting ``frames_bad``.
    """

    __slots__ = ("_skip", "max_packet_bytes", "v5")

    def __init__(self, version: int = MQTT_V5, max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES) -> None:
        if version not in (MQTT_V311, MQTT_V5):
            raise ValueError(f"unsupported MQTT protocol level {version}")
        super().__init__()
        self.v5 = version == MQTT_V5
        self.max_packet_bytes = max_packet_bytes
        self._skip = 0  # bytes of an oversized PUBLISH still to read past

    def reset(self) -> None:
        super().reset()
        self._skip = 0

    def feed(self, data: bytes) -> list[Packet]:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buffer = self._buf
        buffer += data
        packets: list[Packet] = []
        view = memoryview(buffer)
        pos, end = 0, len(buffer)
        try:
            while end - pos >= 2:
                length = buffer[pos + 1]
                if length < 0x80:  # one-byte remaining length: every sensor reading
                    body = pos + 2
                else:
                    length, body = self._remaining_length(view, pos + 1, end)
                    if length > self.max_packet_bytes:
                        oversized, pos = self._oversized(view, pos, body, length)
                        if oversized is None:
                            break  # its header is incomplete
                        packets.append(oversized)
                        continue
                if body < 0 or body + length > end:
                    break  # incomplete
                first = buffer[pos]
                if first >> 4 == PUBLISH:  # the hot path, inlined
                    packets.append(self._publish(view, first, body, body + length))
                else:
                    packets.append(self._control(first, bytes(view[body : body + length])))
                pos = body + length
        finally:
            view.release()
        self._consumed(pos, len(packets), 0, 0)
        return packets

    def _remaining_length(self, view: memoryview, at: int, end: int) -> tuple[int, int]:
        """(remaining length, offset of the body); offset -1 when the length is incomplete."""
        value = shift = 0
        for i in range(at, min(at + 4, end)):
            byte = view[i]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, i + 1
            shift += 7
        if end - at >= 4:
            raise DecodeError("malformed MQTT remaining length")
        return 0, -1

    def _oversized(
        self, view: memoryview, pos: int, body: int, length: int
    ) -> tuple[OversizedPublish | None, int]:
        """An over-limit packet at ``pos``: (its report, where decoding goes on), or (None, pos)
        while its topic and packet id have not all arrived. Its payload is never buffered: what
        follows in the buffer is consumed here, the rest of the packet by the next feeds."""
        first, end = view[pos], len(view)
        if first >> 4 != PUBLISH:
            raise DecodeError(f"MQTT packet of {length} bytes exceeds the limit ({self.max_packet_bytes})")
        qos = first >> 1 & 0x03
        if qos == 3:
            raise DecodeError("PUBLISH with QoS 3")
        if body < 0 or end - body < 2:
            return None, pos
        topic_end = body + 2 + (view[body] << 8 | view[body + 1])
        payload_at = topic_end + (2 if qos else 0)
        if end < payload_at + (1 if self.v5 else 0):
            return None, pos
        packet_id = view[topic_end] << 8 | view[topic_end + 1] if qos else 0
        if qos and not packet_id:
            raise DecodeError("malformed PUBLISH")
        if self.v5:
            try:
                props, after = _varint_at(view, payload_at, end)
            except DecodeError:
                if end - payload_at >= 4:
                    raise
                return None, pos  # the properties length is not all there yet
            payload_at = after + props
        stop = body + length
        head = bytes(view[payload_at : min(end, stop, payload_at + OVERSIZED_HEAD_BYTES)])
        if stop > end:
            self._skip = stop - end
        topic = str(view[body + 2 : topic_end], "utf-8", "replace")
        report = OversizedPublish(topic, head, qos, packet_id, bool(first & 0x01), bool(first & 0x08), length)
        return report, min(stop, end)

    def _publish(self, view: memoryview, first: int, start: int, stop: int) -> Publish:
        qos = first >> 1 & 0x03
        if qos == 3:
            raise DecodeError("PUBLISH with QoS 3")
        if stop - start < 2:
            raise DecodeError("PUBLISH too short")
        topic_end = start + 2 + (view[start] << 8 | view[start + 1])
        try:
            topic = str(view[start + 2 : topic_end], "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("PUBLISH topic is not UTF-8") from exc
        pos, packet_id = topic_end, 0
        if qos:
            packet_id = view[pos] << 8 | view[pos + 1] if pos + 2 <= stop else 0
            pos += 2
        if self.v5 and pos < stop:
            if view[pos] == 0:  # no properties: what a broker sends when we set no topic alias
                pos += 1
            else:
                length, pos = _varint_at(view, pos, stop)
                pos += length
        if pos > stop or (qos and not packet_id):
            raise DecodeError("malformed PUBLISH")
        return Publish(topic, bytes(view[pos:stop]), qos, packet_id, bool(first & 0x01), bool(first & 0x08))

    def _control(self, first: int, body: bytes) -> Packet:
        kind = first >> 4
        try:
            if kind == CONNACK:
                return self._connack(body)
            if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
                return Ack(
                    kind, int.from_bytes(body[0:2], "big"), body[2] if self.v5 and len(body) > 2 else 0
                )
            if kind == SUBACK:
                codes = body[2:]
                if self.v5:
                    length, at = _varint_at(memoryview(body), 2, len(body))
                    codes = body[at + length :]
                return Suback(int.from_bytes(body[0:2], "big"), tuple(codes))
            if kind == PINGRESP:
                return Pingresp()
            if kind in (DISCONNECT, AUTH):
                code = body[0] if body else 0
                props = _read_properties(body, 1) if len(body) > 1 else {}
                return Disconnect(code, _text(props.get(_PROP_REASON_STRING)))
        except IndexError as exc:
            raise DecodeError(f"truncated MQTT packet of type {kind}") from exc
        raise DecodeError(f"unexpected MQTT packet type {kind} from the broker")

    def _connack(self, body: bytes) -> Connack:
        if len(body) < 2:
            raise DecodeError("CONNACK too short")
        props = _read_properties(body, 2) if self.v5 and len(body) > 2 else {}
        receive_maximum = props.get(_PROP_RECEIVE_MAXIMUM, 65535)
        return Connack(
            bool(body[0] & 0x01),
            body[1],
            receive_maximum if isinstance(receive_maximum, int) else 65535,
            _text(props.get(_PROP_REASON_STRING)),
        )


def _varint_at(view: memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(pos + 4, end)):
        byte = view[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise DecodeError("malformed MQTT variable byte integer")


def _read_properties(body: bytes, at: int) -> dict[int, int | bytes]:
    """The MQTT 5 properties block at ``at`` (strings as raw bytes; pairs skipped)."""
    length, pos = _varint_at(body, at, len(body))
    end = pos + length
    if end > len(body):
        raise DecodeError("MQTT properties run past the packet")
    found: dict[int, int | bytes] = {}
    while pos < end:
        ident = body[pos]
        kind = _PROPERTY_TYPES.get(ident)
        pos += 1
        if isinstance(kind, int):
            found[ident] = int.from_bytes(body[pos : pos + kind], "big")
            pos += kind
        elif kind == "v":
            found[ident], pos = _varint_at(body, pos, end)
        elif kind == "s":
            size = int.from_bytes(body[pos : pos + 2], "big")
            found[ident] = body[pos + 2 : pos + 2 + size]
            pos += 2 + size
        elif kind == "p":
            for _ in range(2):
                pos += 2 + int.from_bytes(body[pos : pos + 2], "big")
        else:
            raise DecodeError(f"unknown MQTT 5 property 0x{ident:02x}")
    if pos != end:
        raise DecodeError("malformed MQTT properties")
    return found


def _text(value: int | bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching: ``+`` one level, ``#`` the rest (and the parent level itself).

    Wildcards at the first level never match topics starting with ``$`` (``$SYS/...``), as the
    specification requires.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(levels) == len(wanted)
