"""RDM6300 125 kHz (EM4100) reader frames, sans-I/O.

The module is output-only (9600 8N1) and sends 14 bytes per read::

    02  D D D D D D D D D D  C C  03

ten ASCII hex characters of data -- the version / customer byte, then the 4-byte tag id -- two ASCII
hex characters of checksum (the XOR of the five data bytes) and ``03``. Real modules send upper-case
hex; lower case is accepted too.

A real reader repeats the frame roughly every 100 ms for as long as a card stays in the field.
:class:`Rdm6300Decoder` returns every frame it receives -- it does **not** de-duplicate; turning the
repeats into "card arrived / card left" is the caller's job (it knows its hold time).

Resynchronisation: ``0x02`` never occurs inside a valid frame (all other bytes are ASCII hex or
``0x03``), so after a bad candidate (wrong end byte, non-hex character, checksum mismatch) the decoder
simply looks for the next ``0x02``. Frames have a fixed length, so noise cannot hold a good frame back.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from devices.framing import StreamDecoder

__all__ = ["FRAME_LEN", "Rdm6300Decoder", "Rdm6300Frame", "checksum", "encode_frame"]

STX: Final = 0x02
ETX: Final = 0x03
FRAME_LEN: Final = 14
_HEX: Final = frozenset(b"0123456789ABCDEFabcdef")


class Rdm6300Frame(NamedTuple):
    """One verified read: ``version`` (customer byte) and the 32-bit ``tag_id``."""

    version: int
    tag_id: int

    @property
    def card_hex(self) -> str:
        """The five data bytes as the module sends them (10 upper-case hex characters)."""
        return f"{self.version:02X}{self.tag_id:08X}"

    @property
    def card_number(self) -> str:
        """The tag id as the 10-digit decimal number printed on most EM4100 cards."""
        return f"{self.tag_id:010d}"


def checksum(data: bytes) -> int:
    """XOR of the data bytes."""
    result = 0
    for byte in data:
        result ^= byte
    return result


def encode_frame(card_hex: str) -> bytes:
    """The 14-byte frame for a card given as 10 hex characters (version byte + 4-byte id)."""
    try:
        data = bytes.fromhex(card_hex)
    except ValueError as exc:
        raise ValueError(f"card must be 10 hex characters, got {card_hex!r}") from exc
    if len(data) != 5:
        raise ValueError(f"card must be 10 hex characters (5 bytes), got {card_hex!r}")
    text = f"{data.hex().upper()}{checksum(data):02X}"
    return bytes((STX,)) + text.encode("ascii") + bytes((ETX,))


class Rdm6300Decoder(StreamDecoder):
    """Incremental decoder: ``feed(bytes) -> list[Rdm6300Frame]``; see the module docstring.

    Counters: ``frames_ok``, ``frames_bad`` (candidates starting with 0x02 that were rejected),
    ``bytes_skipped`` (bytes not part of a returned frame).
    """

    __slots__ = ()

    def feed(self, data: bytes) -> list[Rdm6300Frame]:
        """Add received bytes; return every frame completed by them, in order."""
        buf = self._buf
        buf += data
        n = len(buf)
        out: list[Rdm6300Frame] = []
        pos = bad = skipped = 0
        while True:
            start = buf.find(STX, pos)
            if start < 0:
                skipped += n - pos
                pos = n
                break
            skipped += start - pos
            pos = start
            if n - start < FRAME_LEN:
                # A 0x02 inside what we hold cannot belong to this frame: resync there now.
                restart = buf.find(STX, start + 1)
                if restart < 0:
                    break
                bad += 1
                skipped += restart - start
                pos = restart
                continue
            frame = _parse(buf[start : start + FRAME_LEN])
            if frame is None:
                bad += 1
                skipped += 1
                pos = start + 1
                continue
            out.append(frame)
            pos = start + FRAME_LEN
        self._consumed(pos, len(out), bad, skipped)
        return out


def _parse(candidate: bytearray) -> Rdm6300Frame | None:
    """A verified frame from exactly 14 bytes starting with 0x02, else ``None``."""
    if candidate[-1] != ETX or not _HEX.issuperset(candidate[1:-1]):
        return None
    raw = bytes.fromhex(candidate[1:-1].decode("ascii"))
    if checksum(raw[:5]) != raw[5]:
        return None
    return Rdm6300Frame(raw[0], int.from_bytes(raw[1:5], "big"))
