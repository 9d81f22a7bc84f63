"""Modbus RTU for the XY-MD02 / SHT20 temperature-humidity probes (sans-I/O).

Register map (function 0x04, read input registers): 0x0001 temperature x10 as signed int16,
0x0002 relative humidity x10. Frames end with CRC-16/MODBUS (reflected polynomial 0xA001, init
0xFFFF) sent low byte first.

The edge talks to real probes through the ``pymodbus`` client; this module serves the simulator
(:class:`RtuRequestDecoder` + response encoders), the register interpretation shared by both
(:func:`decode_th_registers`) and ``shelfsense decode frame --protocol modbus HEX``
(:func:`decode_rtu_frame`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from devices.errors import DecodeError
from devices.framing import StreamDecoder, reflected_crc16, reflected_crc16_table
from devices.readings import Measurement
from shelfsense.vocabulary import PLAUSIBLE

__all__ = [
    "EXCEPTION_NAMES",
    "FN_READ_HOLDING_REGISTERS",
    "FN_READ_INPUT_REGISTERS",
    "ILLEGAL_DATA_ADDRESS",
    "ILLEGAL_DATA_VALUE",
    "ILLEGAL_FUNCTION",
    "REG_HUMIDITY",
    "REG_TEMPERATURE",
    "SLAVE_DEVICE_FAILURE",
    "RtuRequest",
    "RtuRequestDecoder",
    "crc16",
    "decode_rtu_frame",
    "decode_th_registers",
    "encode_th_registers",
    "exception_response",
    "read_holding_registers_request",
    "read_input_registers_request",
    "read_input_registers_response",
    "read_registers_response",
]

FN_READ_HOLDING_REGISTERS: Final = 0x03
FN_READ_INPUT_REGISTERS: Final = 0x04

REG_TEMPERATURE: Final = 0x0001
REG_HUMIDITY: Final = 0x0002

ILLEGAL_FUNCTION: Final = 0x01
ILLEGAL_DATA_ADDRESS: Final = 0x02
ILLEGAL_DATA_VALUE: Final = 0x03
SLAVE_DEVICE_FAILURE: Final = 0x04
EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "slave device failure",
    0x05: "acknowledge",
    0x06: "slave device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
FUNCTION_NAMES: Final[dict[int, str]] = {
    0x01: "read_coils",
    0x02: "read_discrete_inputs",
    0x03: "read_holding_registers",
    0x04: "read_input_registers",
    0x05: "write_single_coil",
    0x06: "write_single_register",
}

# Probe range of the SHT20 / XY-MD02 (its datasheet): anything outside is a broken probe or a
# corrupted frame. A device's own range may only narrow the vocabulary's plausible one (a test checks).
TEMP_RANGE_C: Final = (-40.0, 80.0)
HUMIDITY_RANGE: Final = PLAUSIBLE["humidity"]

_REQUEST_LEN: Final = 8  # slave fn addr(2) count-or-value(2) crc(2), for functions 0x01..0x06
_MAX_READ_REGISTERS: Final = 125  # Modbus limit for 0x03/0x04


_CRC_TABLE: Final = reflected_crc16_table(0xA001)


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (send it little-endian: ``crc.to_bytes(2, "little")``)."""
    return reflected_crc16(data, _CRC_TABLE)


def _with_crc(pdu: bytes) -> bytes:
    return pdu + crc16(pdu).to_bytes(2, "little")


def _check_slave(slave: int) -> None:
    if not 0 <= slave <= 247:
        raise ValueError(f"slave address must be 0..247, got {slave}")


@dataclass(frozen=True, slots=True)
class RtuRequest:
    """One request as a slave sees it.

    For the read functions (0x01..0x04) ``count`` is the quantity to read; for the single-write
    functions (0x05, 0x06) it is the value written.
    """

    slave: int
    function: int
    address: int
    count: int


def read_input_registers_request(slave: int, address: int, count: int) -> bytes:
    """Function 0x04 request, e.g. ``(1, 0x0001, 2)`` for temperature and humidity."""
    return _read_request(slave, FN_READ_INPUT_REGISTERS, address, count)


def read_holding_registers_request(slave: int, address: int, count: int) -> bytes:
    """Function 0x03 request (the probe's configuration registers live there)."""
    return _read_request(slave, FN_READ_HOLDING_REGISTERS, address, count)


def _read_request(slave: int, function: int, address: int, count: int) -> bytes:
    _check_slave(slave)
    if not 0 <= address <= 0xFFFF or not 1 <= count <= _MAX_READ_REGISTERS:
        raise ValueError(f"address must be 0..65535 and count 1..125, got {address}, {count}")
    return _with_crc(bytes((slave, function)) + address.to_bytes(2, "big") + count.to_bytes(2, "big"))


def read_input_registers_response(slave: int, registers: Sequence[int]) -> bytes:
    """Function 0x04 response carrying ``registers`` (unsigned 16-bit values)."""
    return read_registers_response(slave, FN_READ_INPUT_REGISTERS, registers)


def read_registers_response(slave: int, function: int, registers: Sequence[int]) -> bytes:
    """Response to a 0x03/0x04 read: ``slave fn byte_count data... crc``."""
    _check_slave(slave)
    if not 1 <= len(registers) <= _MAX_READ_REGISTERS:
        raise ValueError(f"1..125 registers per response, got {len(registers)}")
    data = b"".join(int(r).to_bytes(2, "big") for r in registers)
    return _with_crc(bytes((slave, function, len(data))) + data)


def exception_response(slave: int, function: int, code: int) -> bytes:
    """Exception response ``slave (fn|0x80) code crc``, e.g. code 0x02 for an unmapped register."""
    _check_slave(slave)
    if not 0 <= function <= 0x7F or not 0 <= code <= 0xFF:
        raise ValueError(f"bad function 0x{function:02X} or exception code 0x{code:02X}")
    return _with_crc(bytes((slave, function | 0x80, code)))


def encode_th_registers(temperature_c: float, humidity: float) -> list[int]:
    """The two register values a probe reports for a temperature and a humidity (simulator side).

    Values are clamped to the probe range and rounded to its 0.1 resolution, as the firmware does.
    """
    t = round(min(max(temperature_c, TEMP_RANGE_C[0]), TEMP_RANGE_C[1]) * 10)
    h = round(min(max(humidity, HUMIDITY_RANGE[0]), HUMIDITY_RANGE[1]) * 10)
    return [t & 0xFFFF, h]


def decode_th_registers(registers: Sequence[int]) -> list[Measurement]:
    """Temperature (and humidity, when two registers were read) from registers 0x0001.. .

    Raises :class:`DecodeError` for a wrong register count, a value that is not a 16-bit register,
    or a reading outside the probe range (-40..80 degC, 0..100 %RH): such a value comes from a
    broken probe or a corrupted frame, never from the room.
    """
    if not 1 <= len(registers) <= 2:
        raise DecodeError(f"expected 1 or 2 registers from 0x0001, got {len(registers)}")
    for reg in registers:
        if not isinstance(reg, int) or not 0 <= reg <= 0xFFFF:
            raise DecodeError(f"register value {reg!r} is not an unsigned 16-bit integer")
    raw_t = registers[0]
    temperature = (raw_t - 0x10000 if raw_t & 0x8000 else raw_t) / 10
    if not TEMP_RANGE_C[0] <= temperature <= TEMP_RANGE_C[1]:
        raise DecodeError(f"temperature {temperature} degC outside the probe range -40..80 degC")
    out = [Measurement("temperature", temperature, "degC")]
    if len(registers) == 2:
        humidity = registers[1] / 10
        if not HUMIDITY_RANGE[0] <= humidity <= HUMIDITY_RANGE[1]:
            raise DecodeError(f"humidity {humidity} %RH outside the probe range 0..100 %RH")
        out.append(Measurement("humidity", humidity, "%RH"))
    return out


class RtuRequestDecoder(StreamDecoder):
    """Incremental request decoder for the slave (simulator) side: ``feed(bytes) -> list[RtuRequest]``.

    Handles the fixed 8-byte requests (functions 0x01..0x06). RTU has no start byte, and without
    the inter-frame silence timing (which a pty does not preserve) the only frame boundary is a
    matching CRC: on a mismatch the decoder slides one byte and tries again. ``frames_bad`` counts
    losses of sync (one per run of skipped bytes), ``bytes_skipped`` every byte discarded.
    Requests for other functions (0x0F/0x10 multi-writes, which the probe does not implement)
    are skipped as noise, so the master sees a timeout just as with the real probe.
    """

    __slots__ = ("_in_sync",)

    def __init__(self) -> None:
        super().__init__()
        self._in_sync = True

    def reset(self) -> None:
        """Drop any partial request; counters are kept."""
        super().reset()
        self._in_sync = True

    def feed(self, data: bytes) -> list[RtuRequest]:
        """Add received bytes; return every complete request they finish, in order."""
        buf = self._buf
        buf += data
        out: list[RtuRequest] = []
        pos = bad = skipped = 0
        in_sync = self._in_sync
        n = len(buf)
        while n - pos >= _REQUEST_LEN:
            frame = bytes(buf[pos : pos + _REQUEST_LEN])
            if 1 <= frame[1] <= 6 and crc16(frame[:6]) == frame[6] | (frame[7] << 8):
                out.append(
                    RtuRequest(frame[0], frame[1], (frame[2] << 8) | frame[3], (frame[4] << 8) | frame[5])
                )
                in_sync = True
                pos += _REQUEST_LEN
                continue
            if in_sync:
                bad += 1
                in_sync = False
            skipped += 1
            pos += 1
        self._in_sync = in_sync
        self._consumed(pos, len(out), bad, skipped)
        return out


def decode_rtu_frame(data: bytes) -> dict[str, Any]:
    """Decode one complete RTU request or response frame into a JSON-able dict (for the CLI).

    ``kind`` is ``"request"``, ``"response"`` or ``"exception"``; a 0x05/0x06 single write also
    has ``"echo": True`` since the slave's answer repeats the request byte for byte. A 2-register
    response additionally shows ``"as_th_probe"`` (the XY-MD02 reading, assuming it was read
    from 0x0001) when the values are plausible. Raises :class:`DecodeError` when the frame is too
    short, its CRC does not match, or its length fits neither a request nor a response of its
    function (0x01/0x02 responses, which carry bits, are not decoded).
    """
    if len(data) < 4:
        raise DecodeError(f"an RTU frame has at least 4 bytes, got {len(data)}")
    got = data[-2] | (data[-1] << 8)
    want = crc16(data[:-2])
    if got != want:
        raise DecodeError(f"CRC mismatch: frame says 0x{got:04X}, computed 0x{want:04X}")
    slave, function = data[0], data[1]
    body = data[2:-2]
    result: dict[str, Any] = {"slave": slave, "function": function, "crc": f"0x{got:04X}"}
    if function & 0x80:
        if len(body) != 1:
            raise DecodeError(f"exception response must carry 1 code byte, got {len(body)}")
        code = body[0]
        base = function & 0x7F
        result.update(
            kind="exception",
            function_name=FUNCTION_NAMES.get(base, f"0x{base:02X}"),
            exception_code=code,
            exception=EXCEPTION_NAMES.get(code, "unknown"),
        )
        return result
    result["function_name"] = FUNCTION_NAMES.get(function, "unknown")
    if function in (0x03, 0x04) and len(body) == 4:
        result.update(kind="request", address=(body[0] << 8) | body[1], count=(body[2] << 8) | body[3])
        return result
    if function in (0x03, 0x04) and len(body) > 1 and body[0] == len(body) - 1 and body[0] % 2 == 0:
        registers = [(body[i] << 8) | body[i + 1] for i in range(1, len(body), 2)]
        result.update(kind="response", registers=registers)
        result.update(_th_view(registers))
        return result
    if function in (0x01, 0x02) and len(body) == 4:
        result.update(kind="request", address=(body[0] << 8) | body[1], count=(body[2] << 8) | body[3])
        return result
    if function in (0x05, 0x06) and len(body) == 4:
        # A single write and its response are byte-identical (the slave echoes the request).
        result.update(kind="request", address=(body[0] << 8) | body[1], value=(body[2] << 8) | body[3])
        result["echo"] = True
        return result
    raise DecodeError(f"{len(data)}-byte frame fits no request or response of function 0x{function:02X}")


def _th_view(registers: list[int]) -> dict[str, Any]:
    """The XY-MD02 reading of a 2-register response, if it is a plausible one (read from 0x0001)."""
    if len(registers) != 2:
        return {}
    try:
        measurements = decode_th_registers(registers)
    except DecodeError:
        return {}
    return {"as_th_probe": {m.quantity: m.value for m in measurements}}
