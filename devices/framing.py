"""What the incremental serial frame decoders share (UHF, PN532, RDM6300, Modbus RTU), sans-I/O.

Each decoder's ``feed(bytes) -> list[frame]`` appends to a buffer, takes every frame it can and keeps
the unfinished tail for the next call. :class:`StreamDecoder` owns the part that is the same for all
of them -- the buffer, the counters, ``buffered``, ``reset()`` and the end-of-feed bookkeeping -- so
a subclass writes only its framing loop.

The loops themselves stay in the subclasses, with ``bytes.find`` for the start byte inlined: the
protocols differ in what a start is (a byte, a two-byte code with an optional preamble byte, no start
byte at all), and a per-frame call into a shared "skip to the next start byte" helper cost the UHF
decoder 7 % of its frames per second (bench/codecs.py stream). Each loop keeps its counts in locals and
hands them to :meth:`StreamDecoder._consumed` once per feed.
"""

from __future__ import annotations

__all__ = ["StreamDecoder", "reflected_crc16", "reflected_crc16_table"]


class StreamDecoder:
    """Base of the incremental decoders: a buffer and three counters, kept across :meth:`reset`.

    ``frames_ok`` counts frames returned, ``frames_bad`` rejected candidates and ``bytes_skipped``
    bytes discarded that were not part of a returned frame; what exactly makes a candidate is each
    protocol's own (see the subclass).
    """

    __slots__ = ("_buf", "bytes_skipped", "frames_bad", "frames_ok")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames_ok = 0
        self.frames_bad = 0
        self.bytes_skipped = 0

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Drop any partial frame (e.g. after reopening the port); counters are kept."""
        self._buf.clear()

    def _consumed(self, pos: int, ok: int, bad: int, skipped: int) -> None:
        """End of a feed: drop the first ``pos`` buffered bytes (framed or skipped), add the counts."""
        if pos:
            del self._buf[:pos]
        self.frames_ok += ok
        self.frames_bad += bad
        self.bytes_skipped += skipped


def reflected_crc16_table(poly: int) -> tuple[int, ...]:
    """Byte table of a reflected CRC-16 (``poly`` bit-reversed: 0xA001 Modbus, 0x8408 MCRF4XX)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def reflected_crc16(data: bytes | bytearray | memoryview, table: tuple[int, ...], crc: int = 0xFFFF) -> int:
    """A reflected CRC-16 over ``data`` with a table from :func:`reflected_crc16_table`, no final XOR."""
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc
