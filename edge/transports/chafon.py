"""Chafon / UHFReader18-family readers on a serial port (:mod:`devices.chafon`).

Two ways a reader delivers tags (``mode`` in its config):

* ``answer`` (the factory default): the edge polls. It sends Inventory (Cmd 0x01) to the reader's
  address, takes the answer -- one or more frames, "more frames follow" until the last -- and sends
  the next Inventory ``poll_interval_s`` after the round ended. A round without an answer ends after
  ``response_timeout_s`` (a reader that rebooted or a lost frame costs one round, nothing more).
* ``active`` (scan mode, set once with the vendor's tool): the reader inventories by itself and
  streams one frame per tag (reCmd 0xEE); the edge only listens.

Frames whose CRC is fine but whose tag list is not (lengths that do not add up) count as bad frames
in the device health, like CRC failures; an error status (0xF9..0xFF except "no tag") is counted in
``reader_errors``.
"""

from __future__ import annotations

import asyncio
import logging

from devices import chafon
from devices.chafon import ChafonFrame
from devices.readings import TagRead
from edge.clock import Clock
from edge.supervisor import DeviceHealthState
from edge.transports.nfc import SerialLink
from edge.transports.protocol import Emit, TagReads
from edge.transports.registry import Device, DeviceWiring, register_transport
from edge.transports.serial_uhf import SILENCE_LIMIT_S
from shelfsense.config import ChafonReaderConfig

log = logging.getLogger(__name__)


class ChafonSerialTransport:
    def __init__(
        self, config: ChafonReaderConfig, health: DeviceHealthState, emit: Emit, *, clock: Clock
    ) -> None:
        self.config = config
        self.health = health
        self.emit = emit
        self.clock = clock
        self.decoder = chafon.ChafonDecoder()
        self.tag_reads = 0
        self.reader_errors = 0
        self.rounds = 0
        self.rounds_unanswered = 0
        self._round_done = asyncio.Event()

    def _on_bytes(self, data: bytes) -> None:
        bad_before = self.decoder.frames_bad
        frames = self.decoder.feed(data)
        now = self.clock.now()
        corrupt = 0
        reads: list[TagRead] = []
        for frame in frames:
            if not self._dispatch(frame, reads):
                corrupt += 1
        if reads:
            self.tag_reads += len(reads)
            self.emit(TagReads(self.config.id, reads, now))  # accepted at once: nothing to await
        if len(frames) > corrupt:
            self.health.frame_ok(len(frames) - corrupt, now)
        if bad := self.decoder.frames_bad - bad_before + corrupt:
            self.health.frame_bad(bad)

    def _dispatch(self, frame: ChafonFrame, into: list[TagRead]) -> bool:
        """Collect the frame's reads ``into``; False if the frame's content is corrupt."""
        if self.config.address not in (frame.address, chafon.BROADCAST):
            return True  # another reader on the same RS485 bus: not ours, not bad
        if frame.status is not None and frame.status >= 0xF9 and frame.status != chafon.STATUS_NO_TAG:
            self.reader_errors += 1
            log.debug(
                "reader %s answered command 0x%02X with 0x%02X: %s",
                self.config.id,
                frame.command,
                frame.status,
                chafon.STATUS_NAMES.get(frame.status, "?"),
            )
            if frame.command == chafon.CMD_INVENTORY:
                self._round_done.set()
            return True
        if frame.command == chafon.CMD_ACTIVE_DATA:
            read = chafon.parse_active_tag(frame)
            reads = None if read is None else [read]
        elif frame.command == chafon.CMD_INVENTORY:
            reads = chafon.parse_inventory(frame, self.config.variant)
            if chafon.is_final_inventory(frame):
                self._round_done.set()
        else:
            reads = []  # reader info, work mode: nothing to hand over
        if reads is None:
            return False
        into.extend(reads)
        return True

    async def run(self) -> None:
        """Connect and poll (answer mode) or listen (active mode) until the port fails."""
        self.decoder.reset()
        link = SerialLink(self.config.port, self.config.baudrate, self._on_bytes)
        try:
            self.health.mark_connected()
            if self.config.mode == "active":
                await link.failed
            while True:
                await self._poll_round(link)
                await asyncio.wait({link.failed}, timeout=self.config.poll_interval_s)
                link.check()
        finally:
            link.close()

    async def _poll_round(self, link: SerialLink) -> None:
        self._round_done.clear()
        link.write(chafon.inventory_command(self.config.address))
        self.rounds += 1
        done: asyncio.Future[object] = asyncio.ensure_future(self._round_done.wait())
        failed: asyncio.Future[object] = link.failed  # type: ignore[assignment]
        try:
            await asyncio.wait(
                {failed, done}, timeout=self.config.response_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            done.cancel()
        link.check()
        if not self._round_done.is_set():
            self.rounds_unanswered += 1


def _build(wiring: DeviceWiring, config: ChafonReaderConfig) -> Device:
    health = DeviceHealthState(config.id)
    # Answer-mode readers answer every poll; an active-mode reader is silent without tags, so it
    # counts as down after the limit and a passage then is never guessed.
    wiring.reader_liveness[config.id] = (health, SILENCE_LIMIT_S)
    return config.id, health, ChafonSerialTransport(config, health, wiring.emit, clock=wiring.clock)


register_transport("chafon", "uhf_readers", _build, lambda c: isinstance(c, ChafonReaderConfig))
