"""A simulated RDM6300 125 kHz (EM4100) reader on a pseudo-terminal.

The module has no commands: while a card is in its field it sends the card's 14-byte frame
(:func:`devices.rdm6300.encode_frame`) every ``repeat_s`` (about 100 ms on the real module), and
nothing otherwise. ``field()`` returns the card in the field now, as 10 hex characters (version
byte + 4-byte id), or ``None``. EM4100 has no anti-collision, so there is at most one card.

Fault injection: ``inject_noise(n)``, ``corrupt_next(n)`` (wrong checksum characters),
``drop_next(n)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from devices.rdm6300 import encode_frame
from simulators.base import PtySimulator

log = logging.getLogger(__name__)

CardField = Callable[[], str | None]
DEFAULT_REPEAT_S = 0.1


class Rdm6300ReaderSimulator(PtySimulator):
    """One simulated RDM6300 module; see the module docstring."""

    device_name = "RDM6300"

    def __init__(self, field: CardField, repeat_s: float = DEFAULT_REPEAT_S, *, seed: int = 0) -> None:
        if repeat_s <= 0:
            raise ValueError("repeat_s must be positive")
        # The module ignores whatever the host sends (its RX pin is not even connected on most boards).
        super().__init__(lambda data: None, seed=seed)
        self._field = field
        self.repeat_s = repeat_s
        self.frames_sent = 0

    async def _serve(self) -> None:
        """Stream frames for the card in the field (every ``repeat_s``) until cancelled."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self.repeat_s
            delay = next_tick - loop.time()
            if delay < -self.repeat_s:
                next_tick = loop.time()  # fell far behind: do not burst to catch up
            await asyncio.sleep(max(0.0, delay))
            self._raise_if_failed()
            card = self._field()
            if card is not None:
                self._send(encode_frame(card))

    # --------------------------------------------------------------- fault injection

    def inject_noise(self, nbytes: int) -> None:
        """Put ``nbytes`` of random line noise on the wire now (between frames)."""
        self._write_noise(nbytes)

    def _corrupt(self, frame: bytes) -> bytes:
        # Replace the checksum with its bitwise complement: still valid ASCII hex, never equal.
        wrong = (int(frame[11:13], 16) ^ 0xFF) & 0xFF
        return frame[:11] + f"{wrong:02X}".encode("ascii") + frame[13:]

    def _send(self, frame: bytes) -> None:
        frame = self._line_fault(frame)
        if frame:
            self.frames_sent += 1
            self._endpoint.write(frame)
