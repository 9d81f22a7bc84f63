"""Serial frames of the Chafon / UHFReader18 family of UHF readers (sans-I/O).

CF-RU5102/5202/5300, UHFReader18/86/288, RRU9816 and their many clones speak, over RS232/RS485/USB
serial (57600 baud by default; TCP models carry the same bytes)::

    host -> reader:  Len  Adr  Cmd    Data[]  CRC_lo CRC_hi
    reader -> host:  Len  Adr  reCmd  Status  Data[]  CRC_lo CRC_hi

``Len`` counts the bytes after itself (CRC included); ``Adr`` is the reader's address (0xFF
broadcast); the CRC is CRC-16/MCRF4XX (polynomial 0x8408 reflected, init 0xFFFF, no final XOR) over
``Len .. Data``, sent least significant byte first (UHFReader18 user manual V2.0, section 2).

Inventory (Cmd 0x01): the reader answers one or more frames. Status 0x01: inventory finished, 0x02:
scan time ran out, 0x03: more frames follow, 0x04: reader memory full; 0xFB: no tag. The tag list
comes in two layouts, a reader's *variant*:

* ``"18"`` (UHFReader18/86, CF-RU5102): ``Num`` then per tag ``EPCLen EPC``;
* ``"288"`` (UHFReader288, CF-RU5202/5300 and the newer multi-port readers): ``Ant Num`` then per
  tag ``EPCLen EPC RSSI`` -- ``Ant`` is the antenna as a bit mask (0x01 = port 1, 0x02 = port 2,
  ...) and ``RSSI`` the signal strength's magnitude in dBm (0x5A = -90 dBm).

Active ("scan") mode: the reader inventories by itself and sends each tag as a frame with reCmd 0xEE,
Status 0x00 and the EPC as data (the manual's layout; unlike the inventory answers above, no public
capture of it was found to check against). Status codes of errors: 0xF9 command failed, 0xFA poor
communication, 0xFB no tag, 0xFC tag error, 0xFD wrong command length, 0xFE illegal command, 0xFF
parameter error.

:class:`ChafonDecoder` is incremental and resynchronising: there is no start byte, so a candidate is
any position whose ``Len`` is plausible; a bad CRC, an unknown status or an absurd length costs one
byte (``frames_bad``) and the search goes on at the next byte. A candidate whose announced length
has not fully arrived is held back, unless a complete valid frame already follows it.
"""

from __future__ import annotations

import re
from typing import Final, Literal, NamedTuple

from devices.framing import StreamDecoder, reflected_crc16, reflected_crc16_table
from devices.readings import TagRead

__all__ = [
    "BROADCAST",
    "CMD_ACTIVE_DATA",
    "CMD_GET_READER_INFO",
    "CMD_INVENTORY",
    "CMD_SET_WORK_MODE",
    "STATUS_INVENTORY_DONE",
    "STATUS_INVENTORY_TIMEOUT",
    "STATUS_MEMORY_FULL",
    "STATUS_MORE_FRAMES",
    "STATUS_NAMES",
    "STATUS_NO_TAG",
    "STATUS_OK",
    "ChafonDecoder",
    "ChafonFrame",
    "Variant",
    "active_tag_frame",
    "crc16_mcrf4xx",
    "encode_command",
    "encode_response",
    "frame_to_dict",
    "get_reader_info_command",
    "inventory_command",
    "inventory_responses",
    "is_final_inventory",
    "parse_active_tag",
    "parse_inventory",
    "set_work_mode_command",
]

Variant = Literal["18", "288"]

BROADCAST: Final = 0xFF
CMD_INVENTORY: Final = 0x01
CMD_GET_READER_INFO: Final = 0x21
CMD_SET_WORK_MODE: Final = 0x35
CMD_ACTIVE_DATA: Final = 0xEE

STATUS_OK: Final = 0x00
STATUS_INVENTORY_DONE: Final = 0x01
STATUS_INVENTORY_TIMEOUT: Final = 0x02
STATUS_MORE_FRAMES: Final = 0x03
STATUS_MEMORY_FULL: Final = 0x04
STATUS_NO_TAG: Final = 0xFB
STATUS_NAMES: Final[dict[int, str]] = {
    0x00: "ok",
    0x01: "inventory finished",
    0x02: "inventory scan time ran out",
    0x03: "more frames follow",
    0x04: "reader memory full",
    0xF9: "command failed",
    0xFA: "poor communication with the tag",
    0xFB: "no tag",
    0xFC: "tag returned an error",
    0xFD: "wrong command length",
    0xFE: "illegal command",
    0xFF: "parameter error",
}
# Status bytes a reader sends: 0x00..0x1F (success and the tag-access codes of the manual) and
# 0xF9..0xFF (errors). Anything else is not a response, which also keeps noise from posing as one.
_STATUS_OK: Final = frozenset(range(0x20)) | frozenset(range(0xF9, 0x100))
_FINAL_INVENTORY: Final = frozenset({0x01, 0x02, 0x04, STATUS_NO_TAG})
_MIN_COMMAND_LEN: Final = 4  # Adr Cmd CRC CRC
_MIN_RESPONSE_LEN: Final = 5  # Adr reCmd Status CRC CRC
_MAX_EPC_BYTES: Final = 62  # 31 words, the largest EPC a Gen2 PC word can announce
_HEX_RE: Final = re.compile(r"(?:[0-9A-Fa-f]{4})+")


_CRC_TABLE: Final = reflected_crc16_table(0x8408)


def crc16_mcrf4xx(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MCRF4XX: reflected polynomial 0x8408, init 0xFFFF, no final XOR (check 0x6F91)."""
    return reflected_crc16(data, _CRC_TABLE)


class ChafonFrame(NamedTuple):
    """One frame with a valid CRC. ``status`` is None for a host command (no status byte)."""

    address: int
    command: int
    status: int | None
    data: bytes


class ChafonDecoder(StreamDecoder):
    """Incremental decoder: ``feed(bytes) -> list[ChafonFrame]``.

    ``responses=True`` (the edge) reads reader-to-host frames, whose status byte must be one a reader
    sends; ``responses=False`` (the simulator) reads host commands. Counters as in
    :class:`devices.framing.StreamDecoder`; the buffer never holds more than one maximal frame (256
    bytes) plus the last chunk fed.
    """

    __slots__ = ("_min_len", "responses")

    def __init__(self, *, responses: bool = True) -> None:
        super().__init__()
        self.responses = responses
        self._min_len = _MIN_RESPONSE_LEN if responses else _MIN_COMMAND_LEN

    def feed(self, data: bytes) -> list[ChafonFrame]:
        """Add received bytes; return every frame completed by them, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        out: list[ChafonFrame] = []
        pos = ok = bad = skipped = 0
        while n - pos >= self._min_len + 1:
            verdict = self._candidate(buf, pos, n)
            if verdict > 0:
                out.append(self._frame(buf, pos, verdict))
                ok += 1
                pos += verdict
            elif verdict == 0:  # incomplete: wait, unless a complete frame already follows
                later = self._next_complete(buf, pos + 1, n)
                if later < 0:
                    break
                bad += 1
                skipped += later - pos
                pos = later
            else:
                bad += 1
                skipped += 1
                pos += 1
        self._consumed(pos, ok, bad, skipped)
        return out

    def _candidate(self, buf: bytearray, pos: int, n: int) -> int:
        """Frame size at ``pos`` if a valid frame is there, 0 if it may be one still arriving, -1 if not."""
        length = buf[pos]
        if length < self._min_len:
            return -1
        end = pos + length + 1
        if end > n:
            return 0
        if self.responses and buf[pos + 3] not in _STATUS_OK:
            return -1
        if crc16_mcrf4xx(memoryview(buf)[pos : end - 2]) != buf[end - 2] | (buf[end - 1] << 8):
            return -1
        return length + 1

    def _next_complete(self, buf: bytearray, pos: int, n: int) -> int:
        while n - pos >= self._min_len + 1:
            if self._candidate(buf, pos, n) > 0:
                return pos
            pos += 1
        return -1

    def _frame(self, buf: bytearray, pos: int, size: int) -> ChafonFrame:
        if self.responses:
            return ChafonFrame(buf[pos + 1], buf[pos + 2], buf[pos + 3], bytes(buf[pos + 4 : pos + size - 2]))
        return ChafonFrame(buf[pos + 1], buf[pos + 2], None, bytes(buf[pos + 3 : pos + size - 2]))


# --------------------------------------------------------------------------------------------
# Encoders


def _frame_bytes(body: bytes) -> bytes:
    if len(body) + 3 > 0xFF + 1:
        raise ValueError(f"frame of {len(body) + 3} bytes exceeds the 1-byte length field")
    head = bytes((len(body) + 2,)) + body
    return head + crc16_mcrf4xx(head).to_bytes(2, "little")


def _byte(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} must be one byte, got {value}")
    return value


def encode_command(address: int, command: int, data: bytes = b"") -> bytes:
    """A host command frame; raises ``ValueError`` for out-of-range fields."""
    return _frame_bytes(bytes((_byte(address, "address"), _byte(command, "command"))) + data)


def encode_response(address: int, command: int, status: int, data: bytes = b"") -> bytes:
    """A reader response frame (simulator side)."""
    head = bytes((_byte(address, "address"), _byte(command, "command"), _byte(status, "status")))
    return _frame_bytes(head + data)


def inventory_command(address: int = BROADCAST) -> bytes:
    """Inventory (Cmd 0x01) without parameters: ``04 FF 01 1B B4`` to the broadcast address."""
    return encode_command(address, CMD_INVENTORY)


def get_reader_info_command(address: int = BROADCAST) -> bytes:
    """Get Reader Information (Cmd 0x21): ``04 00 21 D9 6A`` to address 0."""
    return encode_command(address, CMD_GET_READER_INFO)


def set_work_mode_command(address: int, active: bool) -> bytes:
    """Set Work Mode (Cmd 0x35): answer mode or active (scan) mode, tags sent over RS232/RS485.

    Data as the UHFReader18 manual lists it: Read_mode (0 answer, 1 active), Mode_state (0x02:
    RS232/RS485 output, buzzer on), Mem_Inven (0x01: EPC), First_Adr 0, Word_Num 1, Tag_Time 0. The
    edge never sends it (a site sets the mode once with the vendor's tool); the simulator honours
    Read_mode, so tests and demos can switch it.
    """
    return encode_command(address, CMD_SET_WORK_MODE, bytes((1 if active else 0, 0x02, 0x01, 0, 1, 0)))


def _epc_bytes(epc_hex: str) -> bytes:
    if not _HEX_RE.fullmatch(epc_hex) or len(epc_hex) > 2 * _MAX_EPC_BYTES:
        raise ValueError(f"EPC must be hex of 1..31 whole 16-bit words, got {epc_hex!r}")
    return bytes.fromhex(epc_hex)


def _tag_entry(epc_hex: str, rssi_dbm: int, variant: Variant) -> bytes:
    epc = _epc_bytes(epc_hex)
    if variant == "18":
        return bytes((len(epc),)) + epc
    if not -255 <= rssi_dbm <= 0:
        raise ValueError(f"RSSI must be -255..0 dBm, got {rssi_dbm}")
    return bytes((len(epc),)) + epc + bytes((-rssi_dbm,))


def inventory_responses(
    address: int, tags: list[tuple[str, int]], variant: Variant = "18", antenna: int = 1
) -> list[bytes]:
    """The frames a reader answers an inventory with (simulator side).

    ``tags`` are ``(epc_hex, rssi_dbm)``; as many as fit go in each frame, every frame but the last
    with status 0x03 (more frames follow), the last 0x01. No tag: one frame with status 0xFB.
    """
    if not tags:
        return [encode_response(address, CMD_INVENTORY, STATUS_NO_TAG)]
    if not 1 <= antenna <= 8:
        raise ValueError(f"antenna must be 1..8, got {antenna}")
    prefix = b"" if variant == "18" else bytes((1 << (antenna - 1),))
    room = 0xFF + 1 - 6 - len(prefix) - 1  # Len Adr reCmd Status [Ant] Num ... CRC CRC
    groups: list[list[bytes]] = [[]]
    used = 0
    for epc_hex, rssi in tags:
        entry = _tag_entry(epc_hex, rssi, variant)
        if used + len(entry) > room:
            groups.append([])
            used = 0
        groups[-1].append(entry)
        used += len(entry)
    frames = []
    for i, group in enumerate(groups):
        status = STATUS_INVENTORY_DONE if i == len(groups) - 1 else STATUS_MORE_FRAMES
        data = prefix + bytes((len(group),)) + b"".join(group)
        frames.append(encode_response(address, CMD_INVENTORY, status, data))
    return frames


def active_tag_frame(address: int, epc_hex: str) -> bytes:
    """One tag as a reader in active (scan) mode sends it: reCmd 0xEE, status 0x00, the EPC."""
    return encode_response(address, CMD_ACTIVE_DATA, STATUS_OK, _epc_bytes(epc_hex))


# --------------------------------------------------------------------------------------------
# Parsers of decoded frames


def _read(epc: bytes, rssi: float | None, antenna: int) -> TagRead:
    return TagRead(epc.hex().upper(), rssi, (len(epc) // 2) << 11, antenna)


def is_final_inventory(frame: ChafonFrame) -> bool:
    """True for the last frame of an inventory answer (anything but "more frames follow")."""
    return frame.command == CMD_INVENTORY and frame.status in _FINAL_INVENTORY


def parse_inventory(frame: ChafonFrame, variant: Variant = "18") -> list[TagRead] | None:
    """The tags of an inventory response; ``[]`` for "no tag"; None if the tag list is corrupt.

    Corrupt: lengths that do not add up to the frame, an EPC that is empty, odd or longer than 31
    words, a count that disagrees with the entries. (The CRC was fine: the reader itself garbled it.)
    """
    if frame.command != CMD_INVENTORY or frame.status is None:
        return None
    if frame.status == STATUS_NO_TAG:
        return []
    if frame.status not in (0x01, 0x02, 0x03, 0x04):
        return None
    data = frame.data
    antenna = 1
    pos = 0
    if variant == "288":
        if not data or not data[0]:
            return None
        antenna = (data[0] & -data[0]).bit_length()  # lowest port in the mask
        pos = 1
    if len(data) <= pos:
        return None
    count = data[pos]
    pos += 1
    reads: list[TagRead] = []
    trailer = 1 if variant == "288" else 0
    while pos < len(data):
        size = data[pos]
        end = pos + 1 + size
        if size == 0 or size % 2 or size > _MAX_EPC_BYTES or end + trailer > len(data):
            return None
        rssi = -float(data[end]) if trailer else None
        reads.append(_read(data[pos + 1 : end], rssi, antenna))
        pos = end + trailer
    return reads if len(reads) == count else None


def parse_active_tag(frame: ChafonFrame) -> TagRead | None:
    """The tag of an active-mode frame (reCmd 0xEE), else None (also for an impossible EPC length)."""
    if frame.command != CMD_ACTIVE_DATA or frame.status != STATUS_OK:
        return None
    epc = frame.data
    if not epc or len(epc) % 2 or len(epc) > _MAX_EPC_BYTES:
        return None
    return _read(epc, None, 1)


def frame_to_dict(frame: ChafonFrame, variant: Variant = "18") -> dict[str, object]:
    """A decoded frame as JSON-able data (``shelfsense decode frame --protocol chafon``)."""
    view: dict[str, object] = {
        "address": f"0x{frame.address:02X}",
        "command": f"0x{frame.command:02X}",
        "data": frame.data.hex().upper(),
    }
    if frame.status is not None:
        view["status"] = f"0x{frame.status:02X}"
        view["status_name"] = STATUS_NAMES.get(frame.status, "unknown")
    reads: list[TagRead] | None = None
    if frame.command == CMD_INVENTORY and frame.status is not None:
        reads = parse_inventory(frame, variant)
    elif frame.command == CMD_ACTIVE_DATA:
        read = parse_active_tag(frame)
        reads = None if read is None else [read]
    else:
        return view
    if reads is None:
        view["error"] = f"corrupt tag list (EPC lengths or count do not add up; variant {variant})"
    else:
        view["tags"] = [{"epc": r.epc, "rssi": r.rssi, "antenna": r.antenna} for r in reads]
    return view
