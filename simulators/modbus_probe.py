"""Simulated XY-MD02 / SHT20 Modbus RTU temperature-humidity probes on one pseudo-terminal "bus".

Several probes (slave ids) share the pty like probes daisy-chained on one RS-485 pair. The edge polls
them with the real pymodbus client::

    client = AsyncModbusSerialClient(port=sim.port, baudrate=9600, timeout=1)
    await client.connect()
    rr = await client.read_input_registers(address=1, count=2, device_id=slave)  # pymodbus >= 3.10

Behaviour, modelled on the real probe:

* function 0x04 (input registers) at 0x0001 (temperature x10, signed) .. 0x0002 (humidity x10):
  answered for ``count`` 1..2 inside that range; other addresses -> exception 0x02, a count of 0 or
  more than 125 -> exception 0x03.
* function 0x03 (holding registers 0x0101..0x0104: slave id, baud code, temperature and humidity
  corrections): answered, so configuration tools work.
* other functions -> exception 0x01.
* a slave id nobody has (and broadcast 0): silence -- on RS-485 nobody answers, the master times out.

Faults: ``stuck`` (temperature frozen), ``drift`` (temperature walks off), ``drop_next`` (answers
lost), ``corrupt_next`` (answers with a bad CRC), ``absurd_next`` (valid frames carrying an impossible
temperature, e.g. 300 degC from a probe rated to 80), ``disconnect`` (cable pulled).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from devices.modbus import (
    FN_READ_HOLDING_REGISTERS,
    FN_READ_INPUT_REGISTERS,
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    REG_HUMIDITY,
    REG_TEMPERATURE,
    RtuRequest,
    RtuRequestDecoder,
    encode_th_registers,
    exception_response,
    read_input_registers_response,
    read_registers_response,
)
from simulators.base import PtySimulator

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[float, float]]

HOLDING_FIRST = 0x0101  # slave id, baud code, temperature correction, humidity correction
HOLDING_LAST = 0x0104
BAUD_CODE_9600 = 0
MAX_READ = 125


class ModbusProbeSimulator(PtySimulator):
    """One RS-485 bus of simulated probes; see the module docstring.

    ``drop_next``/``corrupt_next`` act on answers (a dropped answer: the master times out);
    ``disconnect`` makes the whole bus deaf and mute. The probes take no line noise.
    """

    device_name = "Modbus"

    def __init__(self, probes: dict[int, Probe]) -> None:
        for slave in probes:
            if not 1 <= slave <= 247:
                raise ValueError(f"slave id must be 1..247, got {slave}")
        super().__init__(self._on_data)
        self._probes = dict(probes)
        self._decoder = RtuRequestDecoder()
        self._stuck: float | None = None
        self._drift_per_min = 0.0
        self._drift_since = 0.0
        self._absurd_next = 0
        self._absurd_c = 300.0
        self.requests_received = 0
        self.requests_ignored = 0  # for slaves that are not on this bus
        self.responses_sent = 0
        self.exceptions_sent = 0

    @property
    def slaves(self) -> list[int]:
        """The slave ids on this bus."""
        return sorted(self._probes)

    @property
    def requests_bad(self) -> int:
        """Losses of request sync (noise or corrupted requests)."""
        return self._decoder.frames_bad

    # --------------------------------------------------------------- fault injection

    def stuck(self, value: float | None) -> None:
        """Every probe reports ``value`` degC from now on (a frozen sensor); ``None`` un-sticks."""
        self._stuck = value

    def drift(self, deg_per_min: float) -> None:
        """Temperature walks off by ``deg_per_min`` from now (a failing sensor); 0 stops and resets."""
        self._drift_per_min = deg_per_min
        self._drift_since = time.monotonic()

    def absurd_next(self, n: int, temperature_c: float = 300.0) -> None:
        """The next ``n`` temperature answers report ``temperature_c`` unclamped, with a valid CRC
        (a broken sensor element or a firmware bug: the frame is fine, the value is not)."""
        self._absurd_next += n
        self._absurd_c = temperature_c

    # --------------------------------------------------------------- protocol

    def reading(self, slave: int) -> tuple[float, float]:
        """What probe ``slave`` measures now, faults included (temperature degC, humidity %RH)."""
        temperature, humidity = self._probes[slave]()
        if self._stuck is not None:
            temperature = self._stuck
        if self._drift_per_min:
            temperature += self._drift_per_min * (time.monotonic() - self._drift_since) / 60.0
        return temperature, humidity

    def _on_data(self, data: bytes) -> None:
        for request in self._decoder.feed(data):
            self.requests_received += 1
            answer = self._answer(request)
            if answer is None:
                self.requests_ignored += 1
            else:
                self._send(answer)

    def _answer(self, request: RtuRequest) -> bytes | None:
        slave = request.slave
        if slave not in self._probes:
            return None
        if request.function == FN_READ_INPUT_REGISTERS:
            return self._input_registers(request)
        if request.function == FN_READ_HOLDING_REGISTERS:
            return self._holding_registers(request)
        self.exceptions_sent += 1
        return exception_response(slave, request.function, ILLEGAL_FUNCTION)

    def _input_registers(self, request: RtuRequest) -> bytes:
        first, count = request.address, request.count
        if not 1 <= count <= MAX_READ:
            return self._exception(request, ILLEGAL_DATA_VALUE)
        if first < REG_TEMPERATURE or first + count - 1 > REG_HUMIDITY:
            return self._exception(request, ILLEGAL_DATA_ADDRESS)
        registers = encode_th_registers(*self.reading(request.slave))
        if self._absurd_next > 0:
            self._absurd_next -= 1
            registers[0] = round(self._absurd_c * 10) & 0xFFFF
        offset = first - REG_TEMPERATURE
        return read_input_registers_response(request.slave, registers[offset : offset + count])

    def _holding_registers(self, request: RtuRequest) -> bytes:
        first, count = request.address, request.count
        if not 1 <= count <= MAX_READ:
            return self._exception(request, ILLEGAL_DATA_VALUE)
        if first < HOLDING_FIRST or first + count - 1 > HOLDING_LAST:
            return self._exception(request, ILLEGAL_DATA_ADDRESS)
        holding = [request.slave, BAUD_CODE_9600, 0, 0]
        offset = first - HOLDING_FIRST
        return read_registers_response(
            request.slave, FN_READ_HOLDING_REGISTERS, holding[offset : offset + count]
        )

    def _exception(self, request: RtuRequest, code: int) -> bytes:
        self.exceptions_sent += 1
        return exception_response(request.slave, request.function, code)

    def _corrupt(self, frame: bytes) -> bytes:
        return frame[:-1] + bytes((frame[-1] ^ 0xFF,))  # CRC high byte

    def _send(self, frame: bytes) -> None:
        frame = self._line_fault(frame)
        if frame:
            self.responses_sent += 1
            self._endpoint.write(frame)
