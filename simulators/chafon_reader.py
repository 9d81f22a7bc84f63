"""A simulated Chafon / UHFReader18-family reader on a pseudo-terminal (:mod:`devices.chafon`).

The edge opens :attr:`ChafonReaderSimulator.port` with pyserial like a real CF-RU5102 on
``/dev/ttyUSB0``. What the antenna "sees" comes from a callable (a scenario's field, or a fixed list).

Behaviour, modelled on the UHFReader18 manual:

* Inventory (0x01) to its address or the broadcast address 0xFF: one or more frames with the tags in
  the field (status 0x03 "more frames follow" on all but the last, 0x01 on the last), or status 0xFB
  when the field is empty. Layout per ``variant`` ("18", or "288" with antenna and RSSI).
* Get Reader Information (0x21): version, type, power, scan time.
* Set Work Mode (0x35): first data byte 0 = answer mode, 1 = active mode; answered with status 0.
* In active mode it sends, ``reads_per_s`` times a second, one frame (reCmd 0xEE) per tag in the field.
* Anything else: status 0xFE (illegal command). Frames for another address: silence, as on RS485.

Faults (:class:`simulators.base.PtySimulator`): lost frames, corrupted CRCs, line noise, a pulled cable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from devices.chafon import (
    BROADCAST,
    CMD_GET_READER_INFO,
    CMD_INVENTORY,
    CMD_SET_WORK_MODE,
    STATUS_OK,
    ChafonDecoder,
    ChafonFrame,
    Variant,
    active_tag_frame,
    encode_response,
    inventory_responses,
)
from simulators.base import PtySimulator

Field = Callable[[], Sequence[tuple[str, int]]]
STATUS_ILLEGAL_COMMAND = 0xFE
STATUS_PARAMETER_ERROR = 0xFF
# Version 3.12, type 0x09, protocols 6B + Gen2, 902.75..927.25 MHz band edges, 30 dBm, scan 1 s.
READER_INFO = bytes((0x03, 0x0C, 0x09, 0x03, 0x3E, 0x00, 0x1E, 0x0A))


class ChafonReaderSimulator(PtySimulator):
    """One simulated reader; see the module docstring."""

    device_name = "Chafon"

    def __init__(
        self,
        field: Field,
        *,
        address: int = 0x00,
        variant: Variant = "18",
        mode: str = "answer",
        reads_per_s: float = 10.0,
        antenna: int = 1,
        seed: int = 0,
    ) -> None:
        if reads_per_s <= 0 or mode not in ("answer", "active"):
            raise ValueError("reads_per_s must be positive and mode 'answer' or 'active'")
        super().__init__(self._on_data, seed=seed)
        self._field = field
        self.address = address
        self.variant: Variant = variant
        self.mode = mode
        self.reads_per_s = reads_per_s
        self.antenna = antenna
        self._decoder = ChafonDecoder(responses=False)
        self.frames_sent = 0
        self.commands_received = 0
        self.inventories = 0

    @property
    def commands_bad(self) -> int:
        return self._decoder.frames_bad

    def inject_noise(self, nbytes: int) -> None:
        """Put ``nbytes`` of random line noise on the wire now (between frames)."""
        self._write_noise(nbytes)

    async def _serve(self) -> None:
        """In active mode, one round of tag frames every 1/``reads_per_s`` s."""
        period = 1.0 / self.reads_per_s
        while True:
            await asyncio.sleep(period)
            self._raise_if_failed()
            if self.mode == "active":
                self._send(*(active_tag_frame(self.address, epc) for epc, _ in self._field()))

    def _on_data(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            if frame.address in (self.address, BROADCAST):
                self.commands_received += 1
                self._handle(frame)

    def _handle(self, frame: ChafonFrame) -> None:
        if frame.command == CMD_INVENTORY and not frame.data:
            self.inventories += 1
            tags = [(epc, max(-255, min(0, int(rssi)))) for epc, rssi in self._field()]
            self._send(*inventory_responses(self.address, tags, self.variant, self.antenna))
        elif frame.command == CMD_GET_READER_INFO:
            self._send(encode_response(self.address, CMD_GET_READER_INFO, STATUS_OK, READER_INFO))
        elif frame.command == CMD_SET_WORK_MODE and len(frame.data) == 6 and frame.data[0] in (0, 1):
            self.mode = "active" if frame.data[0] else "answer"
            self._send(encode_response(self.address, CMD_SET_WORK_MODE, STATUS_OK))
        elif frame.command == CMD_SET_WORK_MODE:
            self._send(encode_response(self.address, frame.command, STATUS_PARAMETER_ERROR))
        else:
            self._send(encode_response(self.address, frame.command, STATUS_ILLEGAL_COMMAND))

    def _send(self, *frames: bytes) -> None:
        out = bytearray()
        for frame in frames:
            frame = self._line_fault(frame)
            if frame:
                self.frames_sent += 1
                out += frame
        if out:
            self._endpoint.write(bytes(out))
