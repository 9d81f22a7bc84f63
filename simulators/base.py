"""What the serial device simulators (UHF, PN532, RDM6300, Modbus probe) have in common.

:class:`PtySimulator` owns the pty (:mod:`simulators.pty`) a simulator serves, the ``port`` clients
open, ``run``/``close``, and the line faults that work the same on every device: lost frames, damaged
frames, a pulled cable. Subclasses supply the protocol (``on_data`` and what they send), say how a
frame is damaged (:meth:`PtySimulator._corrupt`) and count what actually leaves.

Line noise is here as a mechanism only (:meth:`PtySimulator._write_noise`): a subclass that can be
noised exposes ``inject_noise`` itself, because the fault scheduler and the CLI pick the simulators
that take noise by whether they have that method.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import ClassVar

from devices.errors import TransportError
from simulators.pty import AsyncPtyEndpoint, open_pty_pair

FAILURE_CHECK_S = 0.5


class PtySimulator:
    """A simulated serial device on the master side of a pty; see the module docstring."""

    #: The device's name in the :class:`TransportError` raised when the pty fails.
    device_name: ClassVar[str] = "serial"

    def __init__(self, on_data: Callable[[bytes], None], *, seed: int = 0) -> None:
        self._pair = open_pty_pair()
        self._endpoint = AsyncPtyEndpoint(self._pair, on_data)
        self._rng = random.Random(seed)
        self._drop_next = 0
        self._corrupt_next = 0
        self.frames_dropped = 0
        self.frames_corrupted = 0
        self.noise_bytes_sent = 0

    @property
    def port(self) -> str:
        """The slave path a client opens (e.g. ``/dev/pts/7``)."""
        return self._pair.slave_path

    async def run(self) -> None:
        """Serve the port until cancelled; :class:`TransportError` if the pty fails."""
        self._endpoint.start()
        try:
            await self._serve()
        finally:
            self._endpoint.stop()

    async def _serve(self) -> None:
        """The device's own activity while :meth:`run` serves; by default only answer the host."""
        while True:
            await asyncio.sleep(FAILURE_CHECK_S)
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._endpoint.failure is not None:
            raise TransportError(f"simulated {self.device_name} port failed: {self._endpoint.failure}")

    def close(self) -> None:
        """Release the pty (idempotent); cancel :meth:`run` first."""
        self._endpoint.stop()
        self._pair.close()

    # --------------------------------------------------------------- fault injection

    def corrupt_next(self, n: int) -> None:
        """The next ``n`` outgoing frames (whatever the device sends) carry a wrong checksum / CRC."""
        self._corrupt_next += n

    def drop_next(self, n: int) -> None:
        """The next ``n`` outgoing frames (whatever the device sends) are lost."""
        self._drop_next += n

    def disconnect(self, seconds: float) -> None:
        """Cable pulled for ``seconds``: the device neither hears nor answers (it keeps its state)."""
        self._endpoint.unplug(seconds)

    def _write_noise(self, nbytes: int) -> None:
        """Put ``nbytes`` of random line noise on the wire now (counted in ``noise_bytes_sent``)."""
        self.noise_bytes_sent += nbytes
        self._endpoint.write(self._rng.randbytes(nbytes))

    def _line_fault(self, frame: bytes) -> bytes:
        """Apply pending drop/corrupt faults to one outgoing frame: ``b""`` if it is lost."""
        if self._drop_next > 0:
            self._drop_next -= 1
            self.frames_dropped += 1
            return b""
        if self._corrupt_next > 0:
            self._corrupt_next -= 1
            self.frames_corrupted += 1
            frame = self._corrupt(frame)
        return frame

    def _corrupt(self, frame: bytes) -> bytes:
        """``frame`` with a wrong checksum; by default the byte before the last one (UHF checksum,
        PN532 DCS) is flipped. Devices that frame differently override this."""
        damaged = bytearray(frame)
        damaged[-2] ^= 0x5A
        return bytes(damaged)
