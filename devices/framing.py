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

__all__ = ["StreamDecoder"]


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
