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
import random
from collections.abc import Callable

from devices.errors import TransportError
from devices.rdm6300 import encode_frame
from simulators.pty import AsyncPtyEndpoint, open_pty_pair

log = logging.getLogger(__name__)

CardField = Callable[[], str | None]
DEFAULT_REPEAT_S = 0.1


class Rdm6300ReaderSimulator:
    """One simulated RDM6300 module; see the module docstring."""

    def __init__(self, field: CardField, repeat_s: float = DEFAULT_REPEAT_S, *, seed: int = 0) -> None:
        if repeat_s <= 0:
            raise ValueError("repeat_s must be positive")
        self._field = field
        self.repeat_s = repeat_s
        self._pair = open_pty_pair()
        # The module ignores whatever the host sends (its RX pin is not even connected on most boards).
        self._endpoint = AsyncPtyEndpoint(self._pair, lambda data: None)
        self._rng = random.Random(seed)
        self._drop_next = 0
        self._corrupt_next = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.frames_corrupted = 0
        self.noise_bytes_sent = 0

    @property
    def port(self) -> str:
        """The slave path a client opens (e.g. ``/dev/pts/7``)."""
        return self._pair.slave_path

    async def run(self) -> None:
        """Stream frames for the card in the field until cancelled."""
        loop = asyncio.get_running_loop()
        self._endpoint.start()
        try:
            next_tick = loop.time()
            while True:
                next_tick += self.repeat_s
                delay = next_tick - loop.time()
                if delay < -self.repeat_s:
                    next_tick = loop.time()  # fell far behind: do not burst to catch up
                await asyncio.sleep(max(0.0, delay))
                if self._endpoint.failure is not None:
                    raise TransportError(f"simulated RDM6300 port failed: {self._endpoint.failure}")
                card = self._field()
                if card is not None:
                    self._send(encode_frame(card))
        finally:
            self._endpoint.stop()

    def close(self) -> None:
        """Release the pty (idempotent); cancel :meth:`run` first."""
        self._endpoint.stop()
        self._pair.close()

    # --------------------------------------------------------------- fault injection

    def inject_noise(self, nbytes: int) -> None:
        """Put ``nbytes`` of random line noise on the wire now (between frames)."""
        self.noise_bytes_sent += nbytes
        self._endpoint.write(self._rng.randbytes(nbytes))

    def corrupt_next(self, n: int) -> None:
        """The next ``n`` frames carry a wrong checksum."""
        self._corrupt_next += n

    def disconnect(self, seconds: float) -> None:
        """Cable pulled for ``seconds``: the module neither hears nor answers."""
        self._endpoint.unplug(seconds)

    def drop_next(self, n: int) -> None:
        """The next ``n`` frames are lost."""
        self._drop_next += n

    def _send(self, frame: bytes) -> None:
        if self._drop_next > 0:
            self._drop_next -= 1
            self.frames_dropped += 1
            return
        if self._corrupt_next > 0:
            self._corrupt_next -= 1
            self.frames_corrupted += 1
            # Replace the checksum with its bitwise complement: still valid ASCII hex, never equal.
            wrong = (int(frame[11:13], 16) ^ 0xFF) & 0xFF
            frame = frame[:11] + f"{wrong:02X}".encode("ascii") + frame[13:]
        self.frames_sent += 1
        self._endpoint.write(frame)
