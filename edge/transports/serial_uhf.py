"""M100/R200 UHF reader on a serial port (USB-UART or a simulator's pty).

pyserial is used non-blocking and its file descriptor is watched with ``loop.add_reader``, so no
thread is needed. Bytes go through the sans-I/O :class:`devices.uhf.UhfFrameDecoder`. The reader
is put into multi-poll mode on connect and again whenever it has been silent for ``repoll_s``: a
reader that rebooted (brown-out, USB re-enumeration) forgets it was polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import serial

from devices import uhf
from devices.errors import TransportError
from devices.readings import TagRead
from edge.clock import utcnow
from edge.supervisor import DeviceHealthState
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import UhfReaderConfig

log = logging.getLogger(__name__)

# Called on the event loop for every valid tag read, with the receive time.
TagReadHandler = Callable[[str, TagRead, datetime], None]


class UhfSerialTransport:
    def __init__(
        self,
        config: UhfReaderConfig,
        health: DeviceHealthState,
        on_read: TagReadHandler,
        *,
        repoll_s: float = 5.0,
    ) -> None:
        self.config = config
        self.health = health
        self.on_read = on_read
        self.repoll_s = repoll_s
        self.tag_reads = 0
        self.reader_errors = 0

    def _open(self) -> serial.Serial:
        try:
            return serial.Serial(self.config.port, self.config.baudrate, timeout=0, write_timeout=1)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.config.port}: {exc}") from exc

    def _write(self, port: serial.Serial, data: bytes) -> None:
        try:
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"write to {self.config.port} failed: {exc}") from exc

    async def run(self) -> None:
        """Connect, start multi-polling and read until the port fails (raises TransportError)."""
        loop = asyncio.get_running_loop()
        port = self._open()
        failed: asyncio.Future[None] = loop.create_future()
        decoder = uhf.UhfFrameDecoder()
        last_frame = loop.time()

        def on_readable() -> None:
            nonlocal last_frame
            try:
                data = port.read(4096)
            except (serial.SerialException, OSError) as exc:
                loop.remove_reader(fd)
                if not failed.done():
                    failed.set_exception(TransportError(f"read from {self.config.port} failed: {exc}"))
                return
            if data and self._on_bytes(decoder, data):
                last_frame = loop.time()

        fd = port.fileno()
        loop.add_reader(fd, on_readable)
        try:
            self._write(port, uhf.multi_poll_command())
            self.health.mark_connected()
            while not failed.done():
                await asyncio.wait({failed}, timeout=self.repoll_s)
                if not failed.done() and loop.time() - last_frame >= self.repoll_s:
                    self._write(port, uhf.multi_poll_command())
            failed.result()
        finally:
            loop.remove_reader(fd)
            port.close()

    def _on_bytes(self, decoder: uhf.UhfFrameDecoder, data: bytes) -> bool:
        """Decode, count and dispatch; True if at least one frame arrived."""
        bad_before = decoder.frames_bad
        frames = decoder.feed(data)
        now = utcnow()
        corrupt = 0  # framing and checksum fine, but the EPC CRC / length is not
        for frame in frames:
            read = uhf.parse_tag_notification(frame)
            if read is not None:
                self.tag_reads += 1
                self.on_read(self.config.id, read, now)
            elif uhf.is_tag_notification(frame):
                corrupt += 1
            elif (code := uhf.parse_error(frame)) is not None:
                self.reader_errors += 1
                log.debug("reader %s answered error 0x%02X", self.config.id, code)
        if len(frames) > corrupt:
            self.health.frame_ok(len(frames) - corrupt, now)
        bad = decoder.frames_bad - bad_before + corrupt
        if bad:
            self.health.frame_bad(bad)
        return bool(frames)


def _build(wiring: DeviceWiring, config: UhfReaderConfig) -> Device:
    health = DeviceHealthState(config.id)
    return config.id, health, UhfSerialTransport(config, health, wiring.on_tag_read)


# M100/R200 modules: the uhf_readers entries that are no other protocol's (Chafon extends this one).
register_transport("m100", "uhf_readers", _build, lambda c: getattr(c, "protocol", "m100") == "m100")
