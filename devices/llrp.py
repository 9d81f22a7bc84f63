"""LLRP 1.0.1 (EPCglobal Low Level Reader Protocol) binary messages, sans-I/O.

The protocol of fixed UHF portal readers (Impinj Speedway/R700, Zebra FX): TCP, default port 5084.
The edge talks to real readers through ``sllurp`` (:mod:`edge.transports.llrp`); this codec is
the *reader* side for the simulator (:mod:`simulators.llrp_reader`) and an independent decoder of
tag reports for diagnostics and tests (its output is cross-checked against sllurp's decoder).

Message header (10 bytes, big endian)::

    | rsvd:3 | ver:3 | type:10 | length:32 (whole message) | message id:32 |

Parameters are TLV (``rsvd:6 type:10 | length:16 (incl. header) | value``; types 128..1023) or
TV (``1 | type:7 | value`` of a fixed size per type; types 1..127). A TLV value holds the
parameter's fields followed by its sub-parameters.

A TCP stream carries messages back to back. :class:`LlrpFrameDecoder` splits it; unlike a serial
line there is no way to resynchronise after a corrupt header (no start byte, no checksum), so a
header with the wrong version or an impossible length raises :class:`DecodeError` and the caller
must drop the connection, as real readers and clients do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from devices.errors import DecodeError
from devices.readings import TagRead

__all__ = [
    "HEADER_SIZE",
    "LLRP_PORT",
    "LLRP_VERSION",
    "MAX_MESSAGE_BYTES",
    "ContentSelector",
    "LlrpFrameDecoder",
    "LlrpMessage",
    "MsgType",
    "Param",
    "ParamType",
    "RoSpecInfo",
    "TagReport",
    "close_connection_response",
    "decode_ro_access_report",
    "encode_message",
    "get_reader_capabilities_response",
    "get_reader_config_response",
    "iter_params",
    "keepalive",
    "llrp_status",
    "parse_rospec",
    "reader_event_notification",
    "ro_access_report",
    "rospec_id_of",
    "status_response",
    "tag_report_to_read",
    "tlv",
    "tv",
]

LLRP_PORT: Final = 5084
LLRP_VERSION: Final = 1  # LLRP 1.0.1
HEADER: Final = struct.Struct(">HII")
HEADER_SIZE: Final = HEADER.size
# Far above any real message (a report of thousands of tags is < 1 MB); a larger length is garbage.
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024


class MsgType(IntEnum):
    GET_READER_CAPABILITIES = 1
    GET_READER_CONFIG = 2
    SET_READER_CONFIG = 3
    CLOSE_CONNECTION_RESPONSE = 4
    GET_READER_CAPABILITIES_RESPONSE = 11
    GET_READER_CONFIG_RESPONSE = 12
    SET_READER_CONFIG_RESPONSE = 13
    CLOSE_CONNECTION = 14
    ADD_ROSPEC = 20
    DELETE_ROSPEC = 21
    START_ROSPEC = 22
    STOP_ROSPEC = 23
    ENABLE_ROSPEC = 24
    DISABLE_ROSPEC = 25
    ADD_ROSPEC_RESPONSE = 30
    DELETE_ROSPEC_RESPONSE = 31
    START_ROSPEC_RESPONSE = 32
    STOP_ROSPEC_RESPONSE = 33
    ENABLE_ROSPEC_RESPONSE = 34
    DISABLE_ROSPEC_RESPONSE = 35
    ADD_ACCESSSPEC = 40
    DELETE_ACCESSSPEC = 41
    ENABLE_ACCESSSPEC = 42
    DISABLE_ACCESSSPEC = 43
    ADD_ACCESSSPEC_RESPONSE = 50
    DELETE_ACCESSSPEC_RESPONSE = 51
    ENABLE_ACCESSSPEC_RESPONSE = 52
    DISABLE_ACCESSSPEC_RESPONSE = 53
    GET_REPORT = 60
    RO_ACCESS_REPORT = 61
    KEEPALIVE = 62
    READER_EVENT_NOTIFICATION = 63
    ENABLE_EVENTS_AND_REPORTS = 64
    KEEPALIVE_ACK = 72
    ERROR_MESSAGE = 100
    CUSTOM_MESSAGE = 1023


# The response type of each request the simulator answers with a plain LLRPStatus.
RESPONSE_OF: Final[dict[int, int]] = {
    MsgType.SET_READER_CONFIG: MsgType.SET_READER_CONFIG_RESPONSE,
    MsgType.CLOSE_CONNECTION: MsgType.CLOSE_CONNECTION_RESPONSE,
    MsgType.ADD_ROSPEC: MsgType.ADD_ROSPEC_RESPONSE,
    MsgType.DELETE_ROSPEC: MsgType.DELETE_ROSPEC_RESPONSE,
    MsgType.START_ROSPEC: MsgType.START_ROSPEC_RESPONSE,
    MsgType.STOP_ROSPEC: MsgType.STOP_ROSPEC_RESPONSE,
    MsgType.ENABLE_ROSPEC: MsgType.ENABLE_ROSPEC_RESPONSE,
    MsgType.DISABLE_ROSPEC: MsgType.DISABLE_ROSPEC_RESPONSE,
    MsgType.ADD_ACCESSSPEC: MsgType.ADD_ACCESSSPEC_RESPONSE,
    MsgType.DELETE_ACCESSSPEC: MsgType.DELETE_ACCESSSPEC_RESPONSE,
    MsgType.ENABLE_ACCESSSPEC: MsgType.ENABLE_ACCESSSPEC_RESPONSE,
    MsgType.DISABLE_ACCESSSPEC: MsgType.DISABLE_ACCESSSPEC_RESPONSE,
}


class ParamType(IntEnum):
    # TV (1..127)
    ANTENNA_ID = 1
    FIRST_SEEN_UTC = 2
    FIRST_SEEN_UPTIME = 3
    LAST_SEEN_UTC = 4
    LAST_SEEN_UPTIME = 5
    PEAK_RSSI = 6
    CHANNEL_INDEX = 7
    TAG_SEEN_COUNT = 8
    ROSPEC_ID = 9
    INVENTORY_PARAMETER_SPEC_ID = 10
    C1G2_CRC = 11
    C1G2_PC = 12
    EPC_96 = 13
    SPEC_INDEX = 14
    # TLV (128..1023)
    UTC_TIMESTAMP = 128
    UPTIME = 129
    GENERAL_DEVICE_CAPABILITIES = 137
    RECEIVE_SENSITIVITY_TABLE_ENTRY = 139
    PER_ANTENNA_AIR_PROTOCOL = 140
    GPIO_CAPABILITIES = 141
    LLRP_CAPABILITIES = 142
    REGULATORY_CAPABILITIES = 143
    UHF_BAND_CAPABILITIES = 144
    TRANSMIT_POWER_LEVEL_TABLE_ENTRY = 145
    FREQUENCY_INFORMATION = 146
    FREQUENCY_HOP_TABLE = 147
    ROSPEC = 177
    RO_BOUNDARY_SPEC = 178
    ROSPEC_START_TRIGGER = 179
    ROSPEC_STOP_TRIGGER = 182
    AISPEC = 183
    IDENTIFICATION = 218
    KEEPALIVE_SPEC = 220
    RO_REPORT_SPEC = 237
    TAG_REPORT_CONTENT_SELECTOR = 238
    TAG_REPORT_DATA = 240
    EPC_DATA = 241
    READER_EVENT_NOTIFICATION_DATA = 246
    CONNECTION_ATTEMPT_EVENT = 256
    CONNECTION_CLOSE_EVENT = 257
    LLRP_STATUS = 287
    C1G2_LLRP_CAPABILITIES = 327
    UHF_C1G2_RF_MODE_TABLE = 328
    UHF_C1G2_RF_MODE_TABLE_ENTRY = 329


# Value sizes of the TV parameters (LLRP 1.0.1 section 16.2.7.3 and 15.2.1.5).
TV_SIZES: Final[dict[int, int]] = {
    1: 2, 2: 8, 3: 8, 4: 8, 5: 8, 6: 1, 7: 2, 8: 2, 9: 4, 10: 2,
    11: 2, 12: 2, 13: 12, 14: 2, 15: 2, 16: 4, 17: 2, 18: 4, 19: 2, 20: 2,
}  # fmt: skip

STATUS_SUCCESS: Final = 0
STATUS_UNSUPPORTED_MESSAGE: Final = 109
CONNECTION_SUCCESS: Final = 0
CONNECTION_FAILED_CLIENT_EXISTS: Final = 2
START_TRIGGER_NULL: Final = 0
START_TRIGGER_IMMEDIATE: Final = 1
AIR_PROTOCOL_EPC_C1G2: Final = 1


@dataclass(frozen=True, slots=True)
class LlrpMessage:
    """One message: ``body`` is everything after the 10-byte header."""

    type: int
    message_id: int
    body: bytes = b""
    version: int = LLRP_VERSION

    @property
    def name(self) -> str:
        try:
            return MsgType(self.type).name
        except ValueError:
            return f"TYPE_{self.type}"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter; ``value`` = its fields and sub-parameters (header stripped)."""

    type: int
    value: bytes
    tv: bool = False


# --------------------------------------------------------------------------------------------
# framing


def encode_message(msg_type: int, message_id: int, body: bytes = b"") -> bytes:
    """Header + body. Version 1, reserved bits zero."""
    if not 0 <= msg_type <= 0x3FF:
        raise ValueError(f"message type {msg_type} does not fit 10 bits")
    return HEADER.pack(LLRP_VERSION << 10 | msg_type, HEADER_SIZE + len(body), message_id & 0xFFFFFFFF) + body


def tlv(param_type: int, value: bytes = b"") -> bytes:
    """A TLV parameter (types 128..1023)."""
    if not 128 <= param_type <= 0x3FF:
        raise ValueError(f"TLV parameter type {param_type} outside 128..1023")
    if len(value) + 4 > 0xFFFF:
        raise ValueError("TLV parameter longer than 65535 bytes")
    return struct.pack(">HH", param_type, len(value) + 4) + value


def tv(param_type: int, value: bytes) -> bytes:
    """A TV parameter (types 1..127) whose value has the size the standard fixes for its type."""
    if TV_SIZES.get(param_type) != len(value):
        raise ValueError(
            f"TV parameter {param_type} needs {TV_SIZES.get(param_type)} bytes, got {len(value)}"
        )
    return bytes([0x80 | param_type]) + value


class LlrpFrameDecoder:
    """Incremental splitter of a TCP byte stream into :class:`LlrpMessage`.

    ``feed`` returns the complete messages so far; a partial one waits for more bytes. A header
    with a version other than 1 or a length below 10 / above :data:`MAX_MESSAGE_BYTES` raises
    :class:`DecodeError` (counted in ``messages_bad``); the stream cannot be trusted after it.
    """

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self.messages_ok = 0
        self.messages_bad = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[LlrpMessage]:
        self._buf += data
        out: list[LlrpMessage] = []
        while len(self._buf) >= HEADER_SIZE:
            word, length, message_id = HEADER.unpack_from(self._buf)
            version = (word >> 10) & 0x7
            if version != LLRP_VERSION or not HEADER_SIZE <= length <= self.max_message_bytes:
                self.messages_bad += 1
                self._buf.clear()
                raise DecodeError(f"bad LLRP header: version {version}, length {length}")
            if len(self._buf) < length:
                break
            out.append(LlrpMessage(word & 0x3FF, message_id, bytes(self._buf[HEADER_SIZE:length]), version))
            del self._buf[:length]
            self.messages_ok += 1
        return out


def iter_params(data: bytes) -> Iterator[Param]:
    """The parameters in ``data`` (one nesting level); DecodeError on truncation or unknown TV types."""
    i = 0
    n = len(data)
    while i < n:
        first = data[i]
        if first & 0x80:
            ptype = first & 0x7F
            size = TV_SIZES.get(ptype)
            if size is None:
                raise DecodeError(f"unknown TV parameter type {ptype} at byte {i}")
            if i + 1 + size > n:
                raise DecodeError(f"TV parameter {ptype} truncated at byte {i}")
            yield Param(ptype, bytes(data[i + 1 : i + 1 + size]), tv=True)
            i += 1 + size
            continue
        if i + 4 > n:
            raise DecodeError(f"TLV header truncated at byte {i}")
        ptype, length = struct.unpack_from(">HH", data, i)
        ptype &= 0x3FF
        if length < 4 or i + length > n:
            raise DecodeError(f"TLV parameter {ptype} at byte {i} has length {length}, {n - i} bytes left")
        yield Param(ptype, bytes(data[i + 4 : i + length]))
        i += length


def _params_after(data: bytes, offset: int) -> list[Param]:
    if offset > len(data):
        raise DecodeError(f"parameter fields need {offset} bytes, got {len(data)}")
    return list(iter_params(data[offset:]))


# --------------------------------------------------------------------------------------------
# reader -> client messages (the simulator's side)


def llrp_status(code: int = STATUS_SUCCESS, description: str = "") -> bytes:
    text = description.encode()
    return tlv(ParamType.LLRP_STATUS, struct.pack(">HH", code, len(text)) + text)


def status_response(
    msg_type: int, message_id: int, code: int = STATUS_SUCCESS, description: str = ""
) -> bytes:
    """A ``*_RESPONSE`` that carries only an LLRPStatus (answers keep the request's message id)."""
    return encode_message(msg_type, message_id, llrp_status(code, description))


def close_connection_response(message_id: int) -> bytes:
    return status_response(MsgType.CLOSE_CONNECTION_RESPONSE, message_id)


def keepalive(message_id: int) -> bytes:
    return encode_message(MsgType.KEEPALIVE, message_id)


def reader_event_notification(
    message_id: int, utc_us: int, *, connection_status: int | None = CONNECTION_SUCCESS, closing: bool = False
) -> bytes:
    """READER_EVENT_NOTIFICATION with a ConnectionAttemptEvent (on accept) or ConnectionCloseEvent."""
    events = tlv(ParamType.UTC_TIMESTAMP, struct.pack(">Q", utc_us))
    if connection_status is not None:
        events += tlv(ParamType.CONNECTION_ATTEMPT_EVENT, struct.pack(">H", connection_status))
    if closing:
        events += tlv(ParamType.CONNECTION_CLOSE_EVENT)
    return encode_message(
        MsgType.READER_EVENT_NOTIFICATION, message_id, tlv(ParamType.READER_EVENT_NOTIFICATION_DATA, events)
    )


def get_reader_capabilities_response(
    message_id: int,
    *,
    antennas: int,
    power_table_cdbm: Sequence[int] = tuple(range(1000, 3001, 100)),
    manufacturer: int = 25882,  # IANA PEN of Impinj; the simulator pretends to be a Speedway
    model: int = 2001002,
    firmware: str = "shelfsense-sim 1.0",
) -> bytes:
    """GET_READER_CAPABILITIES_RESPONSE: general, LLRP, regulatory and C1G2 capabilities.

    Enough of the standard's contents for a client to pick antennas, a transmit power (the table
    is in 0.01 dBm) and an RF mode: what sllurp's connect sequence reads.
    """
    fw = firmware.encode()
    general = struct.pack(">HHIIH", antennas, 0xC000, manufacturer, model, len(fw)) + fw
    general += tlv(ParamType.RECEIVE_SENSITIVITY_TABLE_ENTRY, struct.pack(">HH", 1, 0))
    for antenna in range(1, antennas + 1):
        general += tlv(
            ParamType.PER_ANTENNA_AIR_PROTOCOL, struct.pack(">HHB", antenna, 1, AIR_PROTOCOL_EPC_C1G2)
        )
    general += tlv(ParamType.GPIO_CAPABILITIES, struct.pack(">HH", 0, 0))
    llrp_caps = struct.pack(">BBHIIIII", 0x00, 7, 0, 1, 1, 1, 0, 0)
    power = b"".join(
        tlv(ParamType.TRANSMIT_POWER_LEVEL_TABLE_ENTRY, struct.pack(">HH", i, cdbm))
        for i, cdbm in enumerate(power_table_cdbm, start=1)
    )
    hop = tlv(ParamType.FREQUENCY_HOP_TABLE, struct.pack(">BBHI", 1, 0, 1, 866_900))
    frequency = tlv(ParamType.FREQUENCY_INFORMATION, b"\x80" + hop)
    # Mode 1000: Impinj "AutoSet"-like entry; DR=64/3, FM0, PIE 2.0, Tari 6.25..25 us.
    mode = struct.pack(">IBBBBIIIII", 1000, 0x80, 0, 1, 0, 640_000, 2000, 6250, 25000, 0)
    mode_table = tlv(ParamType.UHF_C1G2_RF_MODE_TABLE, tlv(ParamType.UHF_C1G2_RF_MODE_TABLE_ENTRY, mode))
    band = tlv(ParamType.UHF_BAND_CAPABILITIES, power + frequency + mode_table)
    regulatory = tlv(ParamType.REGULATORY_CAPABILITIES, struct.pack(">HH", 276, 2) + band)  # DE, ETSI 302 208
    c1g2 = tlv(ParamType.C1G2_LLRP_CAPABILITIES, struct.pack(">BH", 0x00, 1))
    body = (
        llrp_status()
        + tlv(ParamType.GENERAL_DEVICE_CAPABILITIES, general)
        + tlv(ParamType.LLRP_CAPABILITIES, llrp_caps)
        + regulatory
        + c1g2
    )
    return encode_message(MsgType.GET_READER_CAPABILITIES_RESPONSE, message_id, body)


def get_reader_config_response(
    message_id: int, reader_id: bytes = b"\x00\x00\x00\x00\x00\x00\x00\x01"
) -> bytes:
    """GET_READER_CONFIG_RESPONSE with a status and the reader's Identification (EPC id format)."""
    ident = tlv(ParamType.IDENTIFICATION, struct.pack(">BH", 1, len(reader_id)) + reader_id)
    return encode_message(MsgType.GET_READER_CONFIG_RESPONSE, message_id, llrp_status() + ident)


@dataclass(frozen=True, slots=True)
class ContentSelector:
    """Which optional fields a TagReportData carries (the client's TagReportContentSelector)."""

    rospec_id: bool = True
    antenna_id: bool = True
    peak_rssi: bool = True
    first_seen: bool = True
    last_seen: bool = True
    seen_count: bool = True

    @classmethod
    def from_flags(cls, flags: int) -> ContentSelector:
        # Bit 15 ROSpecID, 14 SpecIndex, 13 InvParamSpecID, 12 AntennaID, 11 ChannelIndex,
        # 10 PeakRSSI, 9 FirstSeen, 8 LastSeen, 7 TagSeenCount, 6 AccessSpecID.
        return cls(
            rospec_id=bool(flags & 1 << 15),
            antenna_id=bool(flags & 1 << 12),
            peak_rssi=bool(flags & 1 << 10),
            first_seen=bool(flags & 1 << 9),
            last_seen=bool(flags & 1 << 8),
            seen_count=bool(flags & 1 << 7),
        )


@dataclass(frozen=True, slots=True)
class TagReport:
    """One TagReportData: ``None`` = the field was not reported."""

    epc: str  # upper-case hex
    antenna: int | None = None
    peak_rssi: int | None = None  # dBm
    first_seen_us: int | None = None  # UTC microseconds since the epoch
    last_seen_us: int | None = None
    seen_count: int | None = None
    rospec_id: int | None = None


def _epc_param(epc_hex: str) -> bytes:
    raw = bytes.fromhex(epc_hex)
    if len(raw) == 12:
        return tv(ParamType.EPC_96, raw)  # the compact form readers use for 96-bit EPCs
    return tlv(ParamType.EPC_DATA, struct.pack(">H", len(raw) * 8) + raw)


def _tag_report_data(report: TagReport, sel: ContentSelector) -> bytes:
    parts = [_epc_param(report.epc)]
    if sel.rospec_id and report.rospec_id is not None:
        parts.append(tv(ParamType.ROSPEC_ID, struct.pack(">I", report.rospec_id)))
    if sel.antenna_id and report.antenna is not None:
        parts.append(tv(ParamType.ANTENNA_ID, struct.pack(">H", report.antenna)))
    if sel.peak_rssi and report.peak_rssi is not None:
        parts.append(tv(ParamType.PEAK_RSSI, struct.pack(">b", max(-128, min(127, report.peak_rssi)))))
    if sel.first_seen and report.first_seen_us is not None:
        parts.append(tv(ParamType.FIRST_SEEN_UTC, struct.pack(">Q", report.first_seen_us)))
    if sel.last_seen and report.last_seen_us is not None:
        parts.append(tv(ParamType.LAST_SEEN_UTC, struct.pack(">Q", report.last_seen_us)))
    if sel.seen_count and report.seen_count is not None:
        parts.append(tv(ParamType.TAG_SEEN_COUNT, struct.pack(">H", min(report.seen_count, 0xFFFF))))
    return tlv(ParamType.TAG_REPORT_DATA, b"".join(parts))


def ro_access_report(
    message_id: int, reports: Sequence[TagReport], selector: ContentSelector | None = None
) -> bytes:
    sel = selector or ContentSelector()
    return encode_message(
        MsgType.RO_ACCESS_REPORT, message_id, b"".join(_tag_report_data(r, sel) for r in reports)
    )


# --------------------------------------------------------------------------------------------
# decoding (client -> reader requests for the simulator; reports for diagnostics)


def rospec_id_of(msg: LlrpMessage) -> int:
    """The ROSpecID field of START/STOP/ENABLE/DISABLE/DELETE_ROSPEC (0 = all)."""
    if len(msg.body) < 4:
        raise DecodeError(f"{msg.name} needs a 4-byte ROSpecID, got {len(msg.body)} bytes")
    return int.from_bytes(msg.body[:4], "big")


@dataclass(frozen=True, slots=True)
class RoSpecInfo:
    """What the simulator needs from an ADD_ROSPEC."""

    rospec_id: int
    start_trigger: int
    antennas: tuple[int, ...]  # () = all; AntennaID 0 in the AISpec also means all
    report_every_n_tags: int
    selector: ContentSelector


def _first(params: Sequence[Param], ptype: int) -> Param | None:
    return next((p for p in params if p.type == ptype), None)


def parse_rospec(msg: LlrpMessage) -> RoSpecInfo:
    """Decode the ROSpec of an ADD_ROSPEC (only the fields a simulator acts on)."""
    rospec = _first(list(iter_params(msg.body)), ParamType.ROSPEC)
    if rospec is None or len(rospec.value) < 6:
        raise DecodeError("ADD_ROSPEC without a ROSpec parameter")
    rospec_id = int.from_bytes(rospec.value[:4], "big")
    subs = _params_after(rospec.value, 6)
    start_trigger = START_TRIGGER_NULL
    boundary = _first(subs, ParamType.RO_BOUNDARY_SPEC)
    if boundary is not None:
        start = _first(list(iter_params(boundary.value)), ParamType.ROSPEC_START_TRIGGER)
        if start is not None and start.value:
            start_trigger = start.value[0]
    antennas: list[int] = []
    for aispec in (p for p in subs if p.type == ParamType.AISPEC):
        if len(aispec.value) < 2:
            raise DecodeError("AISpec without an antenna count")
        count = int.from_bytes(aispec.value[:2], "big")
        if len(aispec.value) < 2 + 2 * count:
            raise DecodeError(f"AISpec announces {count} antennas but is truncated")
        antennas += [int.from_bytes(aispec.value[2 + 2 * i : 4 + 2 * i], "big") for i in range(count)]
    n_tags, selector = 0, ContentSelector()
    report = _first(subs, ParamType.RO_REPORT_SPEC)
    if report is not None:
        if len(report.value) < 3:
            raise DecodeError("ROReportSpec truncated")
        n_tags = int.from_bytes(report.value[1:3], "big")
        content = _first(_params_after(report.value, 3), ParamType.TAG_REPORT_CONTENT_SELECTOR)
        if content is not None and len(content.value) >= 2:
            selector = ContentSelector.from_flags(int.from_bytes(content.value[:2], "big"))
    all_antennas = not antennas or 0 in antennas
    return RoSpecInfo(rospec_id, start_trigger, () if all_antennas else tuple(antennas), n_tags, selector)


def _tag_report(param: Param) -> TagReport:
    fields: dict[str, int] = {}
    epc: str | None = None
    for p in iter_params(param.value):
        if p.type == ParamType.EPC_96 and p.tv:
            epc = p.value.hex().upper()
        elif p.type == ParamType.EPC_DATA and not p.tv:
            if len(p.value) < 2:
                raise DecodeError("EPCData truncated")
            bits = int.from_bytes(p.value[:2], "big")
            if (bits + 7) // 8 != len(p.value) - 2:
                raise DecodeError(f"EPCData says {bits} bits but carries {len(p.value) - 2} bytes")
            epc = p.value[2:].hex().upper()
        elif p.tv and p.type in _REPORT_FIELDS:
            name, fmt = _REPORT_FIELDS[p.type]
            fields[name] = struct.unpack(fmt, p.value)[0]
    if not epc:
        raise DecodeError("TagReportData without an EPC")
    return TagReport(epc, **fields)


_REPORT_FIELDS: Final[dict[int, tuple[str, str]]] = {
    ParamType.ANTENNA_ID: ("antenna", ">H"),
    ParamType.PEAK_RSSI: ("peak_rssi", ">b"),
    ParamType.FIRST_SEEN_UTC: ("first_seen_us", ">Q"),
    ParamType.LAST_SEEN_UTC: ("last_seen_us", ">Q"),
    ParamType.TAG_SEEN_COUNT: ("seen_count", ">H"),
    ParamType.ROSPEC_ID: ("rospec_id", ">I"),
}


def decode_ro_access_report(msg: LlrpMessage) -> list[TagReport]:
    """The TagReportData of an RO_ACCESS_REPORT (other parameters, e.g. vendor ones, are skipped)."""
    if msg.type != MsgType.RO_ACCESS_REPORT:
        raise DecodeError(f"expected RO_ACCESS_REPORT, got {msg.name}")
    return [_tag_report(p) for p in iter_params(msg.body) if p.type == ParamType.TAG_REPORT_DATA and not p.tv]


def tag_report_to_read(report: TagReport) -> TagRead:
    """A :class:`TagRead` (PC word derived from the EPC length, as the reader did not send it)."""
    words = len(report.epc) // 4
    return TagRead(
        epc=report.epc,
        rssi=None if report.peak_rssi is None else float(report.peak_rssi),
        pc=(words & 0x1F) << 11,
        antenna=report.antenna if report.antenna is not None else 1,
    )
