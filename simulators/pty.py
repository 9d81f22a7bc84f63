"""Pseudo-terminal plumbing for the serial device simulators.

A simulator owns the *master* side of a pty; the code under test (edge, tests) opens the *slave* path
with pyserial exactly as it would open ``/dev/ttyUSB0``.

Two Linux details shape this module:

* When no process has the slave open, reads on the master fail with ``EIO`` and epoll reports the
  master as permanently readable (hang-up). A reader registered with ``loop.add_reader`` would then
  spin. :class:`PtyPair` therefore keeps its own slave descriptor open for its whole life, so the pty
  never hangs up between client sessions (the edge closing and reopening the port after an error).
  :class:`AsyncPtyEndpoint` still treats ``EIO`` as "nobody there, try again later" in case the
  kernel reports it anyway.
* With nobody reading the slave, the kernel buffer fills up and master writes fail with ``EAGAIN``.
  Like a UART with nobody listening, the simulator then drops output (bounded buffer, counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import tty
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Output waiting for the kernel buffer to drain. A real serial line has no buffer at all, so keep
# this small: whatever does not fit is lost, as it would be on the wire.
MAX_PENDING_OUTPUT = 8192
EIO_RETRY_S = 0.1


@dataclass(slots=True)
class PtyPair:
    """A raw pty pair. ``master_fd`` is non-blocking; ``slave_path`` is what clients open."""

    master_fd: int
    slave_path: str
    # Held open so the pty does not hang up while no client has the slave open.
    keepalive_fd: int = field(repr=False)
    closed: bool = False

    def close(self) -> None:
        """Close both descriptors; idempotent."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.keepalive_fd, self.master_fd):
            # OSError: already closed by someone else, nothing left to release.
            with contextlib.suppress(OSError):
                os.close(fd)


def open_pty_pair() -> PtyPair:
    """Open a pty with both sides raw (no echo, no line editing, 8 bit clean), master non-blocking."""
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(master_fd)
        tty.setraw(slave_fd)
        flags = fcntl.fcntl(master_fd, fcntl.F_GETFL)
        fcntl.fcntl(master_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        path = os.ttyname(slave_fd)
    except OSError:
        os.close(master_fd)
        os.close(slave_fd)
        raise
    return PtyPair(master_fd=master_fd, slave_path=path, keepalive_fd=slave_fd)


class AsyncPtyEndpoint:
    """The simulator's asyncio view of a pty master: a data callback in, a non-blocking write out.

    ``on_data`` runs on the event loop with whatever bytes arrived (any chunking). Writes never block:
    output that the kernel does not take right now waits in a small buffer flushed by ``add_writer``;
    beyond :data:`MAX_PENDING_OUTPUT` it is dropped and counted in ``bytes_dropped``.
    """

    def __init__(self, pair: PtyPair, on_data: Callable[[bytes], None]) -> None:
        self.pair = pair
        self._on_data = on_data
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = bytearray()
        self._writer_registered = False
        self._retry: asyncio.TimerHandle | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.bytes_dropped = 0
        # Set when the master failed in a way retrying cannot fix (e.g. closed under us).
        self.failure: OSError | None = None
        self.unplugged = False
        self._replug: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin reading; call from inside the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.pair.master_fd, self._readable)

    def stop(self) -> None:
        """Stop reading and writing (the pty itself stays open)."""
        if self._loop is None:
            return
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._replug is not None:
            self._replug.cancel()
            self._replug = None
        self.unplugged = False
        if not self.pair.closed:
            self._loop.remove_reader(self.pair.master_fd)
            self._loop.remove_writer(self.pair.master_fd)
        self._writer_registered = False
        self._loop = None

    def unplug(self, seconds: float) -> None:
        """Fault: the cable is pulled for ``seconds``. Nothing is heard or said meanwhile, and what
        the client sent during that time is lost (drained on replug), as on a real unplugged UART."""
        if self._loop is None or self.pair.closed:
            return
        if not self.unplugged:
            self.unplugged = True
            self._loop.remove_reader(self.pair.master_fd)
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
            self.bytes_dropped += len(self._pending)
            self._pending.clear()
            self._want_writer(False)
        if self._replug is not None:
            self._replug.cancel()
        self._replug = self._loop.call_later(seconds, self._plug_in)

    def _plug_in(self) -> None:
        self._replug = None
        self.unplugged = False
        if self._loop is None or self.pair.closed:
            return
        while True:  # discard what the client said into the void
            try:
                if not os.read(self.pair.master_fd, 4096):
                    break
            except OSError:  # BlockingIOError: drained; EIO: nobody there
                break
        self._loop.add_reader(self.pair.master_fd, self._readable)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the client; drops it (counted) when the line is backed up."""
        if not data or self.pair.closed:
            return
        if self.unplugged:
            self.bytes_dropped += len(data)
            return
        if len(self._pending) + len(data) > MAX_PENDING_OUTPUT:
            self.bytes_dropped += len(data)
            return
        self._pending += data
        self._flush()

    def _flush(self) -> None:
        while self._pending:
            try:
                written = os.write(self.pair.master_fd, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:
                    self._fail(exc)
                    return
                # Nobody has the slave open: what we say is lost, as on an unplugged cable.
                self.bytes_dropped += len(self._pending)
                self._pending.clear()
                break
            self.bytes_out += written
            del self._pending[:written]
        self._want_writer(bool(self._pending))

    def _want_writer(self, wanted: bool) -> None:
        if self._loop is None or wanted == self._writer_registered:
            return
        if wanted:
            self._loop.add_writer(self.pair.master_fd, self._flush)
        else:
            self._loop.remove_writer(self.pair.master_fd)
        self._writer_registered = wanted

    def _readable(self) -> None:
        try:
            data = os.read(self.pair.master_fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                self._fail(exc)
                return
            self._pause_reading()
            return
        if not data:
            self._pause_reading()
            return
        self.bytes_in += len(data)
        self._on_data(data)

    def _fail(self, exc: OSError) -> None:
        log.error("pty %s failed: %s", self.pair.slave_path, exc)
        self.failure = exc
        self._pending.clear()
        self.stop()

    def _pause_reading(self) -> None:
        """The slave side hung up: stop polling (it would spin) and look again a little later."""
        if self._loop is None:
            return
        self._loop.remove_reader(self.pair.master_fd)
        self._retry = self._loop.call_later(EIO_RETRY_S, self._resume_reading)

    def _resume_reading(self) -> None:
        self._retry = None
        if self._loop is not None and not self.pair.closed:
            self._loop.add_reader(self.pair.master_fd, self._readable)
