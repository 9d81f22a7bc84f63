"""A simulated PN532 NFC controller in HSU (UART) mode on a pseudo-terminal.

The host (edge, tests) opens :attr:`Pn532ReaderSimulator.port` with pyserial and speaks the frames of
:mod:`devices.pn532`. Behaviour, modelled on the chip (UM0701-02):

* After power-up the chip sleeps: frames are ignored until a ``0x55`` byte arrives (the HSU wake-up
  preamble, :func:`devices.pn532.with_wakeup`). PowerDown (0x16) puts it back to sleep.
  ``require_wakeup=False`` skips this for hosts that never send the preamble.
* Every well-formed host command is acknowledged with ACK, then answered:
  SAMConfiguration (0x14) -> ``D5 15``; RFConfiguration (0x32) -> ``D5 33``;
  GetFirmwareVersion (0x02) -> IC 0x32, v1.6, support 0x07;
  InListPassiveTarget (0x4A) at 106 kbps type A -> the tags ``field()`` returns now (at most MaxTg),
  or ``NbTg = 0`` when none is there (the real chip retries for MxRtyPassiveActivation rounds first;
  hosts set that finite, so "no target" is what they get). Other baud rates -> ``NbTg = 0`` (there are
  only type A cards here). Unknown commands or bad parameters -> ACK + the application error frame.
* A NACK from the host makes the chip repeat its last response; an ACK from the host aborts (ignored).
* Host frames with a bad checksum are dropped without an answer, as the chip does.

Fault injection: ``inject_noise(n)``, ``corrupt_next(n)`` (outgoing DCS wrong), ``drop_next(n)``,
``disconnect(s)`` (cable pulled), ``reboot(s)`` (gone, then asleep until woken again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from devices.pn532 import (
    ACK_FRAME,
    BRTY_106A,
    CMD_GET_FIRMWARE_VERSION,
    CMD_IN_LIST_PASSIVE_TARGET,
    CMD_POWER_DOWN,
    CMD_RF_CONFIGURATION,
    CMD_SAM_CONFIGURATION,
    ERROR_FRAME,
    TFI_HOST,
    NfcTag,
    Pn532Frame,
    Pn532FrameDecoder,
    encode_response,
    firmware_version_response,
    inlist_response,
    sam_configuration_response,
)
from simulators.base import PtySimulator

log = logging.getLogger(__name__)

NfcField = Callable[[], Sequence[NfcTag]]
WAKEUP_BYTE = 0x55


class Pn532ReaderSimulator(PtySimulator):
    """One simulated PN532 board; see the module docstring.

    ``corrupt_next``/``drop_next`` act on every outgoing frame, ACKs included (a corrupted frame has
    its DCS wrong; for ACK/NACK the LCS-position byte, which invalidates it too).
    """

    device_name = "PN532"

    def __init__(self, field: NfcField, *, require_wakeup: bool = True, seed: int = 0) -> None:
        super().__init__(self._on_data, seed=seed)
        self._field = field
        self._decoder = Pn532FrameDecoder()
        self.awake = not require_wakeup
        self._last_response = b""
        self.commands_received = 0
        self.bytes_ignored_asleep = 0
        self.responses_sent = 0
        self.errors_sent = 0

    @property
    def commands_bad(self) -> int:
        """Host frames that failed to decode (bad checksums, noise start codes)."""
        return self._decoder.frames_bad

    # --------------------------------------------------------------- fault injection

    def inject_noise(self, nbytes: int) -> None:
        """Put ``nbytes`` of random line noise on the wire now."""
        self._write_noise(nbytes)

    def reboot(self, seconds: float) -> None:
        """Power-cycle: gone for ``seconds``, then asleep until the host wakes it up again."""
        self.awake = False
        self._decoder.reset()
        self._last_response = b""
        self._endpoint.unplug(seconds)

    # --------------------------------------------------------------- protocol

    def _on_data(self, data: bytes) -> None:
        if not self.awake:
            wake = data.find(WAKEUP_BYTE)
            if wake < 0:
                self.bytes_ignored_asleep += len(data)
                return
            self.bytes_ignored_asleep += wake
            self.awake = True
            self._decoder.reset()
            data = data[wake:]
        for frame in self._decoder.feed(data):
            self._handle(frame)
            if not self.awake:
                self._decoder.reset()  # powered down: the rest of this burst is not heard
                return

    def _handle(self, frame: Pn532Frame) -> None:
        if frame.kind == "nack":
            if self._last_response:
                self._send(self._last_response)
            return
        if frame.kind != "info" or frame.tfi != TFI_HOST:
            return  # host ACK (abort), error frames and our own direction: nothing to answer
        self.commands_received += 1
        self._send(ACK_FRAME)
        answer = self._answer(frame)
        if answer is None:
            self.errors_sent += 1
            answer = ERROR_FRAME
        self._last_response = answer
        self.responses_sent += 1
        self._send(answer)

    def _answer(self, frame: Pn532Frame) -> bytes | None:
        command, params = frame.command, frame.params
        if command == CMD_SAM_CONFIGURATION and 1 <= len(params) <= 3 and 1 <= params[0] <= 4:
            return sam_configuration_response()
        if command == CMD_RF_CONFIGURATION and len(params) >= 2:
            return encode_response(CMD_RF_CONFIGURATION)  # accepted; the simulator never waits anyway
        if command == CMD_GET_FIRMWARE_VERSION and not params:
            return firmware_version_response()
        if command == CMD_IN_LIST_PASSIVE_TARGET and len(params) >= 2 and params[0] in (1, 2):
            tags = list(self._field())[: params[0]] if params[1] == BRTY_106A else []
            return inlist_response(tags)
        if command == CMD_POWER_DOWN and params:
            self.awake = False
            return encode_response(CMD_POWER_DOWN, b"\x00")
        return None

    def _send(self, frame: bytes) -> None:
        frame = self._line_fault(frame)  # corruption: DCS (ACK/NACK: LCS position), PtySimulator._corrupt
        if frame:
            self._endpoint.write(frame)
