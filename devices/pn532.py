"""NXP PN532 NFC controller frames in HSU (UART) mode, sans-I/O (NXP UM0701-02, section 6.2).

Frames on the wire::

    normal information   00 00 FF LEN LCS TFI PD0..PDn DCS 00      LEN = 1 + n + 1 (TFI and PDs)
    extended information 00 00 FF FF FF LENM LENL LCS TFI PD0..PDn DCS 00
    ACK                  00 00 FF 00 FF 00
    NACK                 00 00 FF FF 00 00
    error (application)  00 00 FF 01 FF 7F 81 00

``LEN + LCS = 0`` (extended: ``LENM + LENL + LCS = 0``) and ``TFI + sum(PD) + DCS = 0`` modulo 256.
TFI is ``D4`` host -> PN532 and ``D5`` PN532 -> host; PD0 is the command code, and a response's
code is the command's plus one (``4A`` InListPassiveTarget -> ``4B``).

:class:`Pn532FrameDecoder` synchronises on the start code ``00 FF``; the preamble byte before it and
anything else between frames (the host's wake-up ``55 55 00 00 ...``, line noise) is skipped. A candidate
with a bad length checksum, bad data checksum, unknown TFI, bad postamble or absurd length costs
``frames_bad`` and the decoder resumes at the next start code. The postamble is required, as libnfc
requires it. A start code inside noise that announces a long frame does not hold back a complete valid
frame that already sits behind it (the host waits for the ACK before it sends anything else, so a
stalled ACK would stall the whole conversation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

from devices.errors import DecodeError
from devices.framing import StreamDecoder

__all__ = [
    "ACK_FRAME",
    "BRTY_106A",
    "CMD_GET_FIRMWARE_VERSION",
    "CMD_IN_LIST_PASSIVE_TARGET",
    "CMD_POWER_DOWN",
    "CMD_RF_CONFIGURATION",
    "CMD_SAM_CONFIGURATION",
    "ERROR_FRAME",
    "MAX_EXTENDED_LEN",
    "NACK_FRAME",
    "TFI_HOST",
    "TFI_PN532",
    "WAKEUP_PREAMBLE",
    "FirmwareVersion",
    "NfcTag",
    "Pn532Frame",
    "Pn532FrameDecoder",
    "encode_command",
    "encode_information_frame",
    "encode_response",
    "firmware_version_response",
    "frame_to_dict",
    "get_firmware_version_command",
    "in_list_passive_target_command",
    "inlist_response",
    "nfc_tag",
    "parse_firmware_version",
    "parse_inlist_response",
    "rf_configuration_max_retries_command",
    "sam_configuration_command",
    "sam_configuration_response",
    "with_wakeup",
]

TFI_HOST: Final = 0xD4
TFI_PN532: Final = 0xD5
TFI_ERROR: Final = 0x7F  # the byte in TFI position of the application-level error frame

CMD_GET_FIRMWARE_VERSION: Final = 0x02
CMD_SAM_CONFIGURATION: Final = 0x14
CMD_POWER_DOWN: Final = 0x16
CMD_RF_CONFIGURATION: Final = 0x32
CMD_IN_LIST_PASSIVE_TARGET: Final = 0x4A

BRTY_106A: Final = 0x00  # InListPassiveTarget baud rate / modulation: 106 kbps type A (ISO 14443A)
SAM_MODE_NORMAL: Final = 0x01

ACK_FRAME: Final = bytes.fromhex("0000FF00FF00")
NACK_FRAME: Final = bytes.fromhex("0000FFFF0000")
ERROR_FRAME: Final = bytes.fromhex("0000FF01FF7F8100")
# HSU wake-up (UM0701-02 7.2.11, as libnfc sends it): 0x55 pulses wake the chip from power-down, the
# zeros give its oscillator time to start before the first real frame.
WAKEUP_PREAMBLE: Final = bytes.fromhex("5555" + "00" * 14)

# An extended frame carries at most 264 data bytes after the TFI (the PN532's 265-byte buffer).
MAX_EXTENDED_LEN: Final = 265
_SA_NFCID_LENGTHS: Final = frozenset({4, 7, 10})  # single, double, triple size NFCID1 (ISO 14443-3)

FrameKind = Literal["ack", "nack", "error", "info"]


class Pn532Frame(NamedTuple):
    """One well-formed frame. ``tfi`` and ``data`` (PD0..PDn) are only set for ``kind == "info"``."""

    kind: FrameKind
    tfi: int = 0
    data: bytes = b""
    extended: bool = False

    @property
    def command(self) -> int | None:
        """PD0: the command code (host frames) or the response code (PN532 frames)."""
        return self.data[0] if self.data else None

    @property
    def params(self) -> bytes:
        """PD1..PDn."""
        return self.data[1:]


class NfcTag(NamedTuple):
    """One ISO 14443A target as InListPassiveTarget reports it.

    ``atqa`` is SENS_RES as the PN532 sends it, first byte high (``0x0004`` for MIFARE Classic 1K,
    ``0x0044`` for NTAG / Ultralight, as libnfc prints it); ``sak`` is SEL_RES; ``uid_hex`` is NFCID1
    in upper-case hex. ``ats`` (starting with its length byte TL) is present for ISO 14443-4 cards.
    """

    uid_hex: str
    atqa: int
    sak: int
    target: int = 1
    ats: bytes = b""


class FirmwareVersion(NamedTuple):
    """GetFirmwareVersion: IC (0x32 for PN532), version, revision, supported protocols bit mask."""

    ic: int
    version: int
    revision: int
    support: int


# --------------------------------------------------------------------------------------------
# Decoder

# _parse_at results besides a frame: the candidate is invalid / needs more bytes.
_BAD: Final = -1
_MORE: Final = -2


def _parse_at(buf: bytearray, s: int, n: int) -> tuple[int, Pn532Frame | None]:
    """Try the frame whose start code ``00 FF`` is at ``s``: ``(end, frame)`` or ``(_BAD|_MORE, None)``."""
    if n - s < 5:
        return _MORE, None
    length, lcs = buf[s + 2], buf[s + 3]
    if length == 0x00 and lcs == 0xFF:
        return (s + 5, Pn532Frame("ack")) if buf[s + 4] == 0 else (_BAD, None)
    if length == 0xFF and lcs == 0x00:
        return (s + 5, Pn532Frame("nack")) if buf[s + 4] == 0 else (_BAD, None)
    if length == 0xFF and lcs == 0xFF:
        if n - s < 8:
            return _MORE, None
        lenm, lenl, lcs = buf[s + 4], buf[s + 5], buf[s + 6]
        length = (lenm << 8) | lenl
        if (lenm + lenl + lcs) & 0xFF or not 2 <= length <= MAX_EXTENDED_LEN:
            return _BAD, None
        return _body(buf, s + 7, length, n, extended=True)
    if (length + lcs) & 0xFF:
        return _BAD, None
    return _body(buf, s + 4, length, n, extended=False)


def _body(buf: bytearray, t: int, length: int, n: int, *, extended: bool) -> tuple[int, Pn532Frame | None]:
    """TFI at ``t``, ``length`` bytes of TFI+PD, then DCS and postamble."""
    end = t + length + 2
    if end > n:
        return _MORE, None
    if (sum(buf[t : t + length + 1]) & 0xFF) or buf[end - 1] != 0:
        return _BAD, None
    tfi = buf[t]
    if tfi == TFI_ERROR and length == 1 and not extended:
        return end, Pn532Frame("error")
    if tfi not in (TFI_HOST, TFI_PN532) or length < 2:
        return _BAD, None
    return end, Pn532Frame("info", tfi, bytes(buf[t + 1 : t + length]), extended)


class Pn532FrameDecoder(StreamDecoder):
    """Incremental decoder for both directions: ``feed(bytes) -> list[Pn532Frame]``.

    Counters: ``frames_ok``, ``frames_bad`` (candidates rejected), ``bytes_skipped`` (bytes that were
    not part of a returned frame or of its preamble byte). A clean stream skips nothing.
    """

    __slots__ = ()

    def feed(self, data: bytes) -> list[Pn532Frame]:
        """Add received bytes; return every frame completed by them, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        out: list[Pn532Frame] = []
        pos = skipped = bad = 0
        while True:
            s = buf.find(b"\x00\xff", pos)
            if s < 0:
                # Keep trailing zeros (preamble + first start code byte): the FF may still come.
                keep = 0
                while keep < 2 and n - keep > pos and buf[n - keep - 1] == 0:
                    keep += 1
                skipped += n - keep - pos
                pos = n - keep
                break
            # The preamble byte right before the start code belongs to the frame, if it is one.
            lead = s - 1 if s > pos and buf[s - 1] == 0 else s
            end, frame = _parse_at(buf, s, n)
            if end == _MORE and _next_complete_frame(buf, s + 1, n) < 0:
                skipped += lead - pos
                pos = lead
                break
            if frame is None:
                # Bad, or incomplete while a complete frame already sits behind it (the announced
                # length was noise): give up this start code and look again one byte further.
                bad += 1
                skipped += s + 1 - pos
                pos = s + 1
                continue
            skipped += lead - pos
            out.append(frame)
            pos = end
        self._consumed(pos, len(out), bad, skipped)
        return out


def _next_complete_frame(buf: bytearray, pos: int, n: int) -> int:
    """Offset of the first complete, valid frame's start code at or after ``pos``, else -1."""
    while True:
        s = buf.find(b"\x00\xff", pos, n)
        if s < 0:
            return -1
        end, _ = _parse_at(buf, s, n)
        if end >= 0:
            return s
        pos = s + 1


# --------------------------------------------------------------------------------------------
# Encoders


def encode_information_frame(tfi: int, data: bytes, *, extended: bool | None = None) -> bytes:
    """A normal (or, for more than 254 data bytes or when asked, extended) information frame."""
    if tfi not in (TFI_HOST, TFI_PN532):
        raise ValueError(f"TFI must be 0xD4 or 0xD5, got 0x{tfi:02X}")
    if not data:
        raise ValueError("an information frame carries at least the command code")
    length = len(data) + 1
    if length > MAX_EXTENDED_LEN:
        raise ValueError(f"frame data too long: {len(data)} > {MAX_EXTENDED_LEN - 1} bytes")
    if extended is None:
        extended = length > 0xFF
    if not extended and length > 0xFF:
        raise ValueError(f"{len(data)} data bytes need an extended frame")
    dcs = -(tfi + sum(data)) & 0xFF
    if extended:
        lenm, lenl = length >> 8, length & 0xFF
        head = bytes((0x00, 0x00, 0xFF, 0xFF, 0xFF, lenm, lenl, -(lenm + lenl) & 0xFF))
    else:
        head = bytes((0x00, 0x00, 0xFF, length, -length & 0xFF))
    return head + bytes((tfi,)) + bytes(data) + bytes((dcs, 0x00))


def encode_command(command: int, params: bytes = b"") -> bytes:
    """A host -> PN532 command frame (TFI D4)."""
    return encode_information_frame(TFI_HOST, bytes((command,)) + bytes(params))


def encode_response(command: int, params: bytes = b"") -> bytes:
    """The PN532 -> host response frame (TFI D5) to ``command`` (response code = command + 1)."""
    return encode_information_frame(TFI_PN532, bytes(((command + 1) & 0xFF,)) + bytes(params))


def with_wakeup(frame: bytes) -> bytes:
    """``frame`` preceded by the HSU wake-up preamble; send this as the first frame after power-up."""
    return WAKEUP_PREAMBLE + frame


def sam_configuration_command(mode: int = SAM_MODE_NORMAL, timeout: int = 0x14, irq: int = 0x01) -> bytes:
    """SAMConfiguration (0x14): normal mode (no SAM); ``timeout`` is in 50 ms units (virtual card only)."""
    return encode_command(CMD_SAM_CONFIGURATION, bytes((mode, timeout, irq)))


def sam_configuration_response() -> bytes:
    """``D5 15``: SAMConfiguration done."""
    return encode_response(CMD_SAM_CONFIGURATION)


def rf_configuration_max_retries_command(passive_activation: int = 0x02) -> bytes:
    """RFConfiguration (0x32) item 0x05 MaxRetries: ``MxRtyATR=0xFF, MxRtyPSL=0x01``, and
    ``MxRtyPassiveActivation`` -- finite, so InListPassiveTarget answers ``NbTg = 0`` when no card is
    there instead of waiting forever (its power-up default is 0xFF, "retry for ever")."""
    return encode_command(CMD_RF_CONFIGURATION, bytes((0x05, 0xFF, 0x01, passive_activation & 0xFF)))


def get_firmware_version_command() -> bytes:
    """GetFirmwareVersion (0x02): ``00 00 FF 02 FE D4 02 2A 00``."""
    return encode_command(CMD_GET_FIRMWARE_VERSION)


def firmware_version_response(
    ic: int = 0x32, version: int = 1, revision: int = 6, support: int = 0x07
) -> bytes:
    """``D5 03 IC Ver Rev Support``; the defaults are a PN532 v1.6 (ISO 14443A, 14443B and 18092)."""
    return encode_response(CMD_GET_FIRMWARE_VERSION, bytes((ic, version, revision, support)))


def in_list_passive_target_command(max_targets: int = 1, baud: int = BRTY_106A) -> bytes:
    """InListPassiveTarget (0x4A): poll for up to ``max_targets`` (1 or 2) targets at ``baud``."""
    if max_targets not in (1, 2):
        raise ValueError(f"MaxTg must be 1 or 2, got {max_targets}")
    return encode_command(CMD_IN_LIST_PASSIVE_TARGET, bytes((max_targets, baud)))


def nfc_tag(uid_hex: str, atqa: int | None = None, sak: int | None = None) -> NfcTag:
    """A type A tag with typical SENS_RES/SEL_RES for its UID size (4 bytes: MIFARE Classic 1K, else NTAG)."""
    uid = _uid_bytes(uid_hex)
    classic = len(uid) == 4
    return NfcTag(
        uid.hex().upper(),
        (0x0004 if classic else 0x0044) if atqa is None else atqa,
        (0x08 if classic else 0x00) if sak is None else sak,
    )


def inlist_response(tags: Sequence[NfcTag]) -> bytes:
    """``D5 4B NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1 [ATS]]...`` for up to two type A tags."""
    if len(tags) > 2:
        raise ValueError(f"the PN532 lists at most 2 targets, got {len(tags)}")
    body = bytearray((len(tags),))
    for index, tag in enumerate(tags, start=1):
        uid = _uid_bytes(tag.uid_hex)
        body += bytes((index, tag.atqa >> 8 & 0xFF, tag.atqa & 0xFF, tag.sak & 0xFF, len(uid))) + uid
        iso_dep = bool(tag.sak & 0x20)
        if iso_dep != bool(tag.ats) or (tag.ats and tag.ats[0] != len(tag.ats)):
            raise ValueError("an ATS (TL byte = its length) comes with, and only with, SAK bit 0x20")
        body += tag.ats
    return encode_response(CMD_IN_LIST_PASSIVE_TARGET, bytes(body))


def _uid_bytes(uid_hex: str) -> bytes:
    try:
        uid = bytes.fromhex(uid_hex)
    except ValueError as exc:
        raise ValueError(f"UID must be hex, got {uid_hex!r}") from exc
    if len(uid) not in _SA_NFCID_LENGTHS:
        raise ValueError(f"an ISO 14443A UID has 4, 7 or 10 bytes, got {len(uid)}")
    return uid


# --------------------------------------------------------------------------------------------
# Parsers of decoded frames


def _expect_response(frame: Pn532Frame, command: int) -> bytes:
    if frame.kind != "info" or frame.tfi != TFI_PN532 or frame.command != command + 1:
        raise DecodeError(f"not a response to command 0x{command:02X}: {frame.kind} {frame.data.hex()}")
    return frame.params


def parse_firmware_version(frame: Pn532Frame) -> FirmwareVersion:
    """The GetFirmwareVersion response; raises :class:`DecodeError` for anything else."""
    p = _expect_response(frame, CMD_GET_FIRMWARE_VERSION)
    if len(p) != 4:
        raise DecodeError(f"GetFirmwareVersion response has 4 bytes, got {len(p)}")
    return FirmwareVersion(p[0], p[1], p[2], p[3])


def parse_inlist_response(frame: Pn532Frame) -> list[NfcTag]:
    """Targets of an InListPassiveTarget response at 106 kbps type A (``[]`` when none answered).

    Raises :class:`DecodeError` for another frame or a malformed target list (NbTg > 2, a UID size
    that ISO 14443A does not have, truncated or trailing bytes).
    """
    p = _expect_response(frame, CMD_IN_LIST_PASSIVE_TARGET)
    if not p:
        raise DecodeError("InListPassiveTarget response without NbTg")
    count = p[0]
    if count > 2:
        raise DecodeError(f"NbTg {count} > 2")
    tags: list[NfcTag] = []
    i = 1
    for _ in range(count):
        if len(p) < i + 5:
            raise DecodeError("target data truncated")
        target, atqa, sak, uid_len = p[i], (p[i + 1] << 8) | p[i + 2], p[i + 3], p[i + 4]
        if uid_len not in _SA_NFCID_LENGTHS:
            raise DecodeError(f"NFCIDLength {uid_len} is not 4, 7 or 10")
        i += 5
        if len(p) < i + uid_len:
            raise DecodeError("NFCID1 truncated")
        uid = p[i : i + uid_len]
        i += uid_len
        ats = b""
        if sak & 0x20:  # ISO 14443-4 compliant: the PN532 appends the ATS (TL byte first)
            if len(p) <= i or p[i] < 1 or len(p) < i + p[i]:
                raise DecodeError("ATS truncated")
            ats = p[i : i + p[i]]
            i += len(ats)
        tags.append(NfcTag(uid.hex().upper(), atqa, sak, target, ats))
    if i != len(p):
        raise DecodeError(f"{len(p) - i} trailing bytes after {count} targets")
    return tags


def frame_to_dict(frame: Pn532Frame) -> dict[str, object]:
    """A JSON-able view of a frame, with the known responses decoded (for the CLI)."""
    view: dict[str, object] = {"kind": frame.kind}
    if frame.kind != "info":
        return view
    view.update(
        direction="host->pn532" if frame.tfi == TFI_HOST else "pn532->host",
        tfi=f"0x{frame.tfi:02X}",
        command=f"0x{frame.command:02X}",
        params=frame.params.hex().upper(),
        extended=frame.extended,
    )
    if frame.tfi == TFI_PN532:
        try:
            if frame.command == CMD_GET_FIRMWARE_VERSION + 1:
                view["firmware"] = parse_firmware_version(frame)._asdict()
            elif frame.command == CMD_IN_LIST_PASSIVE_TARGET + 1:
                view["targets"] = [
                    {**tag._asdict(), "ats": tag.ats.hex().upper()} for tag in parse_inlist_response(frame)
                ]
        except DecodeError as exc:
            view["error"] = str(exc)
    return view
