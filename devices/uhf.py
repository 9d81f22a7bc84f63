"""Serial frames of the M100 / R200 family of UHF RFID modules (sans-I/O).

Wire format (all multi-byte fields big-endian)::

    BB  type  cmd  PL_hi PL_lo  params[PL]  checksum  7E

``checksum = (type + cmd + PL_hi + PL_lo + sum(params)) & 0xFF``. Frame types: 0x00 command (host to
module), 0x01 response, 0x02 notification (unsolicited, e.g. one per tag during a multi-poll).

An inventory notification (type 0x02, cmd 0x22) carries ``RSSI(int8 dBm) PC(2) EPC(n) CRC(2)``
where PC bits 15..11 are the EPC length in 16-bit words and CRC is the tag's own EPC Gen2
CRC-16 over PC+EPC as backscattered. The module forwards it unchecked, so
:func:`parse_tag_notification` verifies it: a frame whose checksum is fine but whose EPC CRC is
wrong is a corrupted *read* (RF collision, bit flip) and yields ``None`` -- the caller counts it
(see :func:`is_tag_notification`) and drops it; it never becomes a tag that does not exist.

:class:`UhfFrameDecoder` is incremental and resynchronising: bytes may arrive split anywhere; noise,
a bad checksum, a wrong end byte, an unknown frame type or an absurd length costs the candidate
frame (``frames_bad``) and the decoder looks for the next ``0xBB``. It runs on ``bytes.find`` and
C-level slice sums rather than a per-byte Python loop, so one core frames well over 200k
notifications per second.
"""

from __future__ import annotations

import binascii
import re
from typing import Final, NamedTuple

from devices.framing import StreamDecoder
from devices.readings import TagRead

__all__ = [
    "CMD_ERROR",
    "CMD_GET_POWER",
    "CMD_MULTI_POLL",
    "CMD_SET_POWER",
    "CMD_SET_REGION",
    "CMD_SINGLE_POLL",
    "CMD_STOP_MULTI_POLL",
    "ERROR_NAMES",
    "ERR_INVALID_COMMAND",
    "ERR_NO_TAG",
    "FRAME_COMMAND",
    "FRAME_NOTIFICATION",
    "FRAME_RESPONSE",
    "MAX_PAYLOAD",
    "REGION_CHINA_800",
    "REGION_CHINA_900",
    "REGION_EUROPE",
    "REGION_KOREA",
    "REGION_US",
    "UhfFrame",
    "UhfFrameDecoder",
    "encode_frame",
    "error_response",
    "gen2_crc16",
    "get_power_command",
    "is_tag_notification",
    "multi_poll_command",
    "parse_error",
    "parse_multi_poll",
    "parse_power",
    "parse_tag_notification",
    "response",
    "set_power_command",
    "set_region_command",
    "single_poll_command",
    "stop_multi_poll_command",
    "tag_notification",
]

HEADER: Final = 0xBB
END: Final = 0x7E

FRAME_COMMAND: Final = 0x00
FRAME_RESPONSE: Final = 0x01
FRAME_NOTIFICATION: Final = 0x02

CMD_MODULE_INFO: Final = 0x03
CMD_SET_REGION: Final = 0x07
CMD_SINGLE_POLL: Final = 0x22
CMD_MULTI_POLL: Final = 0x27
CMD_STOP_MULTI_POLL: Final = 0x28
CMD_SET_POWER: Final = 0xB6
CMD_GET_POWER: Final = 0xB7
CMD_ERROR: Final = 0xFF

# Error codes carried by an error response (type 0x01, cmd 0xFF).
ERR_INVALID_COMMAND: Final = 0x17
ERR_NO_TAG: Final = 0x15  # inventory found no tag / inventory failed
ERROR_NAMES: Final[dict[int, str]] = {
    0x09: "read failed",
    0x10: "write failed",
    0x15: "no tag (inventory failed)",
    0x16: "access password wrong",
    0x17: "invalid command",
    0x20: "frequency hopping failed",
}

# Region codes of the set-region command (0x07).
REGION_CHINA_900: Final = 0x01
REGION_US: Final = 0x02
REGION_EUROPE: Final = 0x03
REGION_CHINA_800: Final = 0x04
REGION_KOREA: Final = 0x06

# Longest params we accept. The modules never send more than a few dozen bytes; capping the
# length keeps a noise byte 0xBB followed by a huge "length" from stalling the stream while the
# decoder waits for tens of kilobytes that will never come.
MAX_PAYLOAD: Final = 512

_FRAME_OVERHEAD: Final = 7  # BB type cmd PLh PLl ... checksum 7E
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]*")


class UhfFrame(NamedTuple):
    """One well-formed frame (checksum and end byte already verified)."""

    frame_type: int
    command: int
    params: bytes


def gen2_crc16(data: bytes) -> int:
    """EPC Gen2 CRC-16 (CCITT polynomial 0x1021, init 0xFFFF, final XOR 0xFFFF, MSB first).

    ``binascii.crc_hqx`` is exactly this CRC without the final XOR, computed in C.
    """
    return binascii.crc_hqx(data, 0xFFFF) ^ 0xFFFF


class UhfFrameDecoder(StreamDecoder):
    """Incremental frame decoder: ``feed(bytes) -> list[UhfFrame]``.

    A frame is accepted when its type is 0..2, its length at most ``max_payload``, its checksum
    and end byte right. A header whose announced length has not fully arrived is held back, unless
    a complete valid frame already follows it: then the header is taken for noise. (A valid frame
    that happens to contain another valid frame in its params is the one ambiguity no decoder of
    this format can resolve; with an 8-bit checksum *and* a fixed end byte it needs ~1/65536 luck.)

    Counters: ``frames_ok`` (frames returned), ``frames_bad`` (candidate frames rejected: bad
    checksum, bad end byte, unknown type, absurd length), ``bytes_skipped`` (bytes discarded that
    were not part of a returned frame). The internal buffer never grows beyond one maximal frame
    plus the last chunk fed.
    """

    __slots__ = ("max_payload",)

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        super().__init__()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[UhfFrame]:
        """Add received bytes; return every frame completed by them, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        find = buf.find
        max_payload = self.max_payload
        out: list[UhfFrame] = []
        append = out.append
        pos = 0
        ok = bad = skipped = 0
        while True:
            start = find(HEADER, pos)
            if start < 0:
                skipped += n - pos
                pos = n
                break
            skipped += start - pos
            pos = start
            if n - pos < 5:
                break  # header incomplete: wait for more bytes
            frame_type = buf[pos + 1]
            plen = (buf[pos + 3] << 8) | buf[pos + 4]
            if frame_type > FRAME_NOTIFICATION or plen > max_payload:
                bad += 1
                skipped += 1
                pos += 1
                continue
            end = pos + _FRAME_OVERHEAD + plen
            if end > n:
                # Incomplete. If the declared length was noise, a complete valid frame may already
                # sit behind it; do not hold that frame hostage until more bytes arrive.
                later = _next_complete_frame(buf, pos + 1, n, max_payload)
                if later < 0:
                    break
                bad += 1
                skipped += later - pos
                pos = later
                continue
            if buf[end - 1] != END or (sum(buf[pos + 1 : end - 2]) & 0xFF) != buf[end - 2]:
                bad += 1
                skipped += 1
                pos += 1
                continue
            append(UhfFrame(frame_type, buf[pos + 2], bytes(buf[pos + 5 : end - 2])))
            ok += 1
            pos = end
        self._consumed(pos, ok, bad, skipped)
        return out


def _next_complete_frame(buf: bytearray, pos: int, n: int, max_payload: int) -> int:
    """Offset of the first complete, valid frame at or after ``pos`` in ``buf[:n]``, else -1."""
    while True:
        pos = buf.find(HEADER, pos, n)
        if pos < 0 or n - pos < _FRAME_OVERHEAD:
            return -1
        plen = (buf[pos + 3] << 8) | buf[pos + 4]
        end = pos + _FRAME_OVERHEAD + plen
        if (
            buf[pos + 1] <= FRAME_NOTIFICATION
            and plen <= max_payload
            and end <= n
            and buf[end - 1] == END
            and (sum(buf[pos + 1 : end - 2]) & 0xFF) == buf[end - 2]
        ):
            return pos
        pos += 1


# --------------------------------------------------------------------------------------------
# Encoders (host commands for the edge, responses and notifications for the simulator)


def encode_frame(frame_type: int, command: int, params: bytes = b"") -> bytes:
    """Build one complete frame; raises ``ValueError`` for out-of-range fields."""
    if not 0 <= frame_type <= FRAME_NOTIFICATION:
        raise ValueError(f"frame type must be 0..2, got {frame_type}")
    if not 0 <= command <= 0xFF:
        raise ValueError(f"command must be one byte, got {command}")
    plen = len(params)
    if plen > MAX_PAYLOAD:
        raise ValueError(f"params too long: {plen} > {MAX_PAYLOAD} bytes")
    body = bytes((frame_type, command, plen >> 8, plen & 0xFF)) + bytes(params)
    return b"\xbb" + body + bytes((sum(body) & 0xFF, END))


def single_poll_command() -> bytes:
    """One inventory round (cmd 0x22): ``BB 00 22 00 00 22 7E``."""
    return encode_frame(FRAME_COMMAND, CMD_SINGLE_POLL)


def multi_poll_command(count: int = 0xFFFF) -> bytes:
    """Start ``count`` inventory rounds (cmd 0x27, params ``22 count_hi count_lo``)."""
    if not 0 <= count <= 0xFFFF:
        raise ValueError(f"multi-poll count must be 0..65535, got {count}")
    return encode_frame(FRAME_COMMAND, CMD_MULTI_POLL, bytes((0x22, count >> 8, count & 0xFF)))


def stop_multi_poll_command() -> bytes:
    """Stop a running multi-poll (cmd 0x28): ``BB 00 28 00 00 28 7E``."""
    return encode_frame(FRAME_COMMAND, CMD_STOP_MULTI_POLL)


def set_power_command(dbm: float) -> bytes:
    """Set the transmit power (cmd 0xB6, 2 bytes: dBm x 100, e.g. 26 dBm -> ``0A 28``)."""
    centi = round(dbm * 100)
    if not 0 <= centi <= 0xFFFF:
        raise ValueError(f"power out of range: {dbm} dBm")
    return encode_frame(FRAME_COMMAND, CMD_SET_POWER, centi.to_bytes(2, "big"))


def get_power_command() -> bytes:
    """Ask for the transmit power (cmd 0xB7); the response carries dBm x 100."""
    return encode_frame(FRAME_COMMAND, CMD_GET_POWER)


def module_info_command(info: int = 0x00) -> bytes:
    """Ask for module information (cmd 0x03; 0x00 hardware version, 0x01 software version,
    0x02 manufacturer): every module answers it in any mode, so it doubles as a heartbeat."""
    if not 0 <= info <= 0xFF:
        raise ValueError(f"info selector must be one byte, got {info}")
    return encode_frame(FRAME_COMMAND, CMD_MODULE_INFO, bytes((info,)))


def set_region_command(region: int) -> bytes:
    """Select the frequency region (cmd 0x07, 1 byte: see the ``REGION_*`` constants)."""
    if not 0 <= region <= 0xFF:
        raise ValueError(f"region must be one byte, got {region}")
    return encode_frame(FRAME_COMMAND, CMD_SET_REGION, bytes((region,)))


def response(command: int, params: bytes = b"\x00") -> bytes:
    """A response frame (type 0x01) to ``command``; ``00`` is the usual "success" parameter."""
    return encode_frame(FRAME_RESPONSE, command, params)


def error_response(code: int) -> bytes:
    """An error response (type 0x01, cmd 0xFF, one code byte), e.g. ``0x15`` = no tag."""
    if not 0 <= code <= 0xFF:
        raise ValueError(f"error code must be one byte, got {code}")
    return encode_frame(FRAME_RESPONSE, CMD_ERROR, bytes((code,)))


def tag_notification(epc_hex: str, rssi_dbm: int, pc: int | None = None) -> bytes:
    """An inventory notification as the module streams it (type 0x02, cmd 0x22).

    ``pc`` defaults to the EPC length in words shifted into bits 15..11; the EPC CRC-16 is
    computed over PC+EPC as a real tag would backscatter it.
    """
    if not _HEX_RE.fullmatch(epc_hex) or len(epc_hex) % 4 or not epc_hex:
        raise ValueError(f"EPC must be non-empty hex of whole 16-bit words, got {epc_hex!r}")
    epc = bytes.fromhex(epc_hex)
    words = len(epc) // 2
    if words > 31:
        raise ValueError(f"EPC too long for the PC length field: {words} words > 31")
    if pc is None:
        pc = words << 11
    elif not 0 <= pc <= 0xFFFF or pc >> 11 != words:
        raise ValueError(f"PC 0x{pc:04X} does not announce {words} EPC words")
    if not -128 <= rssi_dbm <= 127:
        raise ValueError(f"RSSI must fit a signed byte, got {rssi_dbm}")
    pc_epc = pc.to_bytes(2, "big") + epc
    params = bytes((rssi_dbm & 0xFF,)) + pc_epc + gen2_crc16(pc_epc).to_bytes(2, "big")
    return encode_frame(FRAME_NOTIFICATION, CMD_SINGLE_POLL, params)


# --------------------------------------------------------------------------------------------
# Parsers of decoded frames


def is_tag_notification(frame: UhfFrame) -> bool:
    """True for an inventory notification (whether or not its EPC CRC turns out valid)."""
    return frame.frame_type == FRAME_NOTIFICATION and frame.command == CMD_SINGLE_POLL


def parse_tag_notification(frame: UhfFrame) -> TagRead | None:
    """The tag read carried by an inventory notification, else ``None``.

    ``None`` both for frames that are not inventory notifications and for notifications that are
    corrupt: params length disagreeing with the PC word, an empty EPC, or an EPC CRC-16 mismatch.
    Use :func:`is_tag_notification` to tell the two apart and count the corrupt reads.
    """
    if frame.frame_type != FRAME_NOTIFICATION or frame.command != CMD_SINGLE_POLL:
        return None
    p = frame.params
    if len(p) < 7:
        return None
    pc = (p[1] << 8) | p[2]
    end = 3 + ((pc >> 11) << 1)
    if len(p) != end + 2 or end == 3:
        return None
    if binascii.crc_hqx(p[1:end], 0xFFFF) ^ 0xFFFF != (p[end] << 8) | p[end + 1]:
        return None
    rssi = p[0] - 256 if p[0] > 127 else p[0]
    return TagRead(p[3:end].hex().upper(), float(rssi), pc)


def parse_error(frame: UhfFrame) -> int | None:
    """The error code of an error response (type 0x01, cmd 0xFF), else ``None``."""
    if frame.frame_type == FRAME_RESPONSE and frame.command == CMD_ERROR and frame.params:
        return frame.params[0]
    return None


def parse_multi_poll(frame: UhfFrame) -> int | None:
    """The round count of a multi-poll command frame (simulator side), else ``None``."""
    p = frame.params
    if frame.frame_type == FRAME_COMMAND and frame.command == CMD_MULTI_POLL and len(p) == 3:
        return (p[1] << 8) | p[2]
    return None


def parse_power(frame: UhfFrame) -> float | None:
    """dBm of a set-power command or a get-power response, else ``None``."""
    p = frame.params
    if frame.command in (CMD_SET_POWER, CMD_GET_POWER) and len(p) == 2 and frame.frame_type < 2:
        return ((p[0] << 8) | p[1]) / 100
    return None
