"""M100/R200 UHF reader on a serial port (USB-UART or a simulator's pty).

pyserial is used non-blocking and its file descriptor is watched with ``loop.add_reader``, so no
thread is needed. Bytes go through the sans-I/O :class:`devices.uhf.UhfFrameDecoder`. The reader
is put into multi-poll mode on connect and again whenever no tag has been reported for ``repoll_s``: a
reader that rebooted (brown-out, USB re-enumeration) forgets it was polling.

Heartbeat: a reader with an empty field says nothing, and a pulled USB-UART cable often raises no
error at all (the pty / tty just goes quiet). So whenever nothing at all was heard for
``heartbeat_s`` the transport asks for the module information (cmd 0x03), which a module answers
in any mode. Every frame stamps ``health.last_frame_at``: a reader not heard for
``silence_limit_s`` is treated as down by the portals (see :mod:`edge.portal`).
"""

from __future__ import annotations

import asyncio
import logging

import serial

from devices import uhf
from devices.errors import TransportError
from devices.readings import TagRead
from edge.clock import Clock
from edge.supervisor import DeviceHealthState
from edge.transports.protocol import Emit, TagReads
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import UhfReaderConfig

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
# Not heard for this long (three heartbeats unanswered): the reader counts as down.
SILENCE_LIMIT_S = 3 * HEARTBEAT_S


class UhfSerialTransport:
    def __init__(
        self,
        config: UhfReaderConfig,
        health: DeviceHealthState,
        emit: Emit,
        *,
        clock: Clock,
        repoll_s: float = 5.0,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.config = config
        self.health = health
        self.emit = emit
        self.clock = clock
        self.repoll_s = repoll_s
        self.heartbeat_s = heartbeat_s
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
        last_frame = last_tag = loop.time()

        def on_readable() -> None:
            nonlocal last_frame, last_tag
            try:
                data = port.read(4096)
            except (serial.SerialException, OSError) as exc:
                loop.remove_reader(fd)
                if not failed.done():
                    failed.set_exception(TransportError(f"read from {self.config.port} failed: {exc}"))
                return
            frames, tags = self._on_bytes(decoder, data) if data else (0, 0)
            if frames:
                last_frame = loop.time()
            if tags:
                last_tag = loop.time()

        fd = port.fileno()
        loop.add_reader(fd, on_readable)
        try:
            self._write(port, uhf.multi_poll_command())
            self._write(port, uhf.module_info_command())  # heard at once, even with an empty field
            self.health.mark_connected()
            while not failed.done():
                await asyncio.wait({failed}, timeout=min(self.heartbeat_s, self.repoll_s))
                if failed.done():
                    break
                if loop.time() - last_tag >= self.repoll_s:
                    self._write(port, uhf.multi_poll_command())
                    last_tag = loop.time()
                if loop.time() - last_frame >= self.heartbeat_s:
                    self._write(port, uhf.module_info_command())
            failed.result()
        finally:
            loop.remove_reader(fd)
            port.close()

    def _on_bytes(self, decoder: uhf.UhfFrameDecoder, data: bytes) -> tuple[int, int]:
        """Decode, count and dispatch; (frames, tag reads) that arrived."""
        bad_before = decoder.frames_bad
        frames = decoder.feed(data)
        now = self.clock.now()
        corrupt = 0  # framing and checksum fine, but the EPC CRC / length is not
        reads: list[TagRead] = []
        for frame in frames:
            read = uhf.parse_tag_notification(frame)
            if read is not None:
                reads.append(read)
            elif uhf.is_tag_notification(frame):
                corrupt += 1
            elif (code := uhf.parse_error(frame)) is not None:
                self.reader_errors += 1
                log.debug("reader %s answered error 0x%02X", self.config.id, code)
        if reads:
            self.tag_reads += len(reads)
            self.emit(TagReads(self.config.id, reads, now))  # accepted at once: nothing to await
        if len(frames) > corrupt:
            self.health.frame_ok(len(frames) - corrupt, now)
        bad = decoder.frames_bad - bad_before + corrupt
        if bad:
            self.health.frame_bad(bad)
        return len(frames), len(reads)


def _build(wiring: DeviceWiring, config: UhfReaderConfig) -> Device:
    health = DeviceHealthState(config.id)
    wiring.reader_liveness[config.id] = (health, SILENCE_LIMIT_S)
    return config.id, health, UhfSerialTransport(config, health, wiring.emit, clock=wiring.clock)


# M100/R200 modules: the uhf_readers entries that are no other protocol's (Chafon extends this one).
register_transport("m100", "uhf_readers", _build, lambda c: getattr(c, "protocol", "m100") == "m100")
