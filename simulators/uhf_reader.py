"""A simulated M100 / R200 UHF RFID module on a pseudo-terminal.

The edge opens :attr:`UhfReaderSimulator.port` with pyserial exactly like a real module on
``/dev/ttyUSB0`` and speaks the same frames (:mod:`devices.uhf`). What the simulated antenna "sees"
comes from a callable, usually a scenario (``ScenarioRunner.outer_field``).

Behaviour, modelled on the real module:

* multi-poll (0x27, ``count`` rounds): no response frame; ``reads_per_s`` times per second one
  inventory notification per tag in the field, until ``count`` rounds are done or stop arrives.
  Rounds that find no tag send nothing.
* stop multi-poll (0x28): response ``BB 01 28 00 01 00 2A 7E``.
* single poll (0x22): one round of notifications, or error 0x15 when no tag is in the field.
* set/get power (0xB6/0xB7), set region (0x07), module info (0x03): answered.
* anything else: error response 0x17 (invalid command).

Fault injection, to exercise the edge's error handling: line noise, corrupt checksums, lost frames,
a pulled cable (:meth:`UhfReaderSimulator.disconnect`), a tag collision (many strangers at once) and a
reboot that makes the module deaf for a while and forget that it was multi-polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from devices.uhf import (
    CMD_GET_POWER,
    CMD_MULTI_POLL,
    CMD_SET_POWER,
    CMD_SET_REGION,
    CMD_SINGLE_POLL,
    CMD_STOP_MULTI_POLL,
    ERR_INVALID_COMMAND,
    ERR_NO_TAG,
    FRAME_COMMAND,
    UhfFrame,
    UhfFrameDecoder,
    error_response,
    parse_multi_poll,
    parse_power,
    response,
    tag_notification,
)
from simulators.base import PtySimulator

log = logging.getLogger(__name__)

CMD_MODULE_INFO = 0x03
MODULE_INFO = {0x00: b"M100 26dBm V1.0", 0x01: b"V2.3.5", 0x02: b"ShelfSense simulator"}
Field = Callable[[], Sequence[tuple[str, int]]]


class UhfReaderSimulator(PtySimulator):
    """One simulated single-antenna UHF module; see the module docstring.

    ``corrupt_next``/``drop_next`` act on every outgoing frame (responses and tag notifications);
    ``disconnect`` leaves the module's state (multi-poll included) as it was.
    """

    device_name = "UHF"

    def __init__(self, field: Field, reads_per_s: float = 20.0, *, seed: int = 0) -> None:
        if reads_per_s <= 0:
            raise ValueError("reads_per_s must be positive")
        super().__init__(self._on_data, seed=seed)
        self._field = field
        self.reads_per_s = reads_per_s
        self._decoder = UhfFrameDecoder()
        self._rounds_left = 0
        self._power_centi_dbm = 2600
        self._reboot_until = 0.0
        self._collision_tags: list[tuple[str, int]] = []
        self._collision_until = 0.0
        # Counters (frames handed to the line; a dropped frame is not "sent"). frames_corrupted,
        # frames_dropped and noise_bytes_sent are PtySimulator's.
        self.frames_sent = 0
        self.notifications_sent = 0
        self.responses_sent = 0
        self.commands_received = 0
        self.rounds_done = 0

    # --------------------------------------------------------------- public surface

    @property
    def multi_polling(self) -> bool:
        return self._rounds_left > 0 and not self.rebooting

    @property
    def rebooting(self) -> bool:
        return time.monotonic() < self._reboot_until

    @property
    def commands_bad(self) -> int:
        """Host frames that failed to decode (bad checksum, noise)."""
        return self._decoder.frames_bad

    async def _serve(self) -> None:
        """Tick ``reads_per_s`` times a second; each tick is a multi-poll round while one runs."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.reads_per_s
        next_tick = loop.time()
        while True:
            next_tick += period
            delay = next_tick - loop.time()
            if delay < -period:
                next_tick = loop.time()  # fell far behind (suspended?): do not burst to catch up
            await asyncio.sleep(max(0.0, delay))
            self._raise_if_failed()
            if self.multi_polling:
                self._rounds_left -= 1
                self._send_round()

    # --------------------------------------------------------------- fault injection

    def inject_noise(self, nbytes: int) -> None:
        """Put ``nbytes`` of random line noise on the wire now (between frames)."""
        self._write_noise(nbytes)

    def collide(self, tags: int, seconds: float) -> None:
        """``tags`` extra tags in the field for ``seconds`` (a full pallet of strangers at once)."""
        self._collision_tags = [
            (f"3034{self._rng.getrandbits(80):020X}", self._rng.randint(-75, -50)) for _ in range(tags)
        ]
        self._collision_until = time.monotonic() + seconds

    def set_rebooting(self, seconds: float) -> None:
        """Power-cycle: deaf and mute for ``seconds``, then idle (multi-poll state is gone)."""
        self._reboot_until = time.monotonic() + seconds
        self._rounds_left = 0
        self._decoder.reset()
        log.info("simulated UHF reader on %s rebooting for %.1f s", self.port, seconds)

    # --------------------------------------------------------------- protocol

    def _on_data(self, data: bytes) -> None:
        if self.rebooting:
            return  # a module that is booting hears nothing
        for frame in self._decoder.feed(data):
            self.commands_received += 1
            self._handle(frame)

    def _handle(self, frame: UhfFrame) -> None:
        if frame.frame_type != FRAME_COMMAND:
            self._send(error_response(ERR_INVALID_COMMAND), response_frame=True)
            return
        command = frame.command
        if command == CMD_MULTI_POLL:
            count = parse_multi_poll(frame)
            if count is None:
                self._send(error_response(ERR_INVALID_COMMAND), response_frame=True)
            else:
                self._rounds_left = count  # streaming starts on the next tick; no response frame
        elif command == CMD_STOP_MULTI_POLL:
            self._rounds_left = 0
            self._send(response(CMD_STOP_MULTI_POLL, b"\x00"), response_frame=True)
        elif command == CMD_SINGLE_POLL:
            if not self._send_round():
                self._send(error_response(ERR_NO_TAG), response_frame=True)
        elif command == CMD_SET_POWER:
            dbm = parse_power(frame)
            if dbm is None:
                self._send(error_response(ERR_INVALID_COMMAND), response_frame=True)
            else:
                self._power_centi_dbm = round(dbm * 100)
                self._send(response(CMD_SET_POWER, b"\x00"), response_frame=True)
        elif command == CMD_GET_POWER:
            self._send(response(CMD_GET_POWER, self._power_centi_dbm.to_bytes(2, "big")), response_frame=True)
        elif command == CMD_SET_REGION and len(frame.params) == 1:
            self._send(response(CMD_SET_REGION, b"\x00"), response_frame=True)
        elif command == CMD_MODULE_INFO and len(frame.params) == 1 and frame.params[0] in MODULE_INFO:
            info = MODULE_INFO[frame.params[0]]
            self._send(response(CMD_MODULE_INFO, frame.params + info), response_frame=True)
        else:
            self._send(error_response(ERR_INVALID_COMMAND), response_frame=True)

    def _send_round(self) -> bool:
        """One inventory round: a notification per tag in the field. False if the field was empty."""
        tags = list(self._field())
        if self._collision_tags and time.monotonic() < self._collision_until:
            tags += self._collision_tags
        self.rounds_done += 1
        if not tags:
            return False
        out = bytearray()
        for epc, rssi in tags:
            frame = self._fault(tag_notification(epc, max(-128, min(127, int(rssi)))))
            if frame:
                self.notifications_sent += 1
                out += frame
        self._endpoint.write(bytes(out))
        return True

    def _send(self, frame: bytes, *, response_frame: bool) -> None:
        frame = self._fault(frame)
        if frame:
            if response_frame:
                self.responses_sent += 1
            self._endpoint.write(frame)

    def _fault(self, frame: bytes) -> bytes:
        """Apply pending drop/corrupt faults to one outgoing frame; counts what leaves.

        A corrupted frame has its checksum byte (the one before the end byte) flipped.
        """
        frame = self._line_fault(frame)
        if frame:
            self.frames_sent += 1
        return frame
