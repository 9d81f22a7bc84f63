"""Simulated XY-MD02 probes polled by the real pymodbus client over a pty, exactly as the edge does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from simtest_helpers import running

from devices.modbus import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_FUNCTION,
    crc16,
    decode_rtu_frame,
    decode_th_registers,
    read_input_registers_request,
)
from simulators.modbus_probe import ModbusProbeSimulator

ROOM = {1: (-3.4, 61.2), 7: (22.5, 40.0)}
Bus = tuple[ModbusProbeSimulator, AsyncModbusSerialClient]


def constant(value: tuple[float, float]) -> Callable[[], tuple[float, float]]:
    return lambda: value


def values(registers: Sequence[int]) -> dict[str, float]:
    return {m.quantity: m.value for m in decode_th_registers(registers)}


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    sim = ModbusProbeSimulator({slave: constant(v) for slave, v in ROOM.items()})
    async with running(sim):
        client = AsyncModbusSerialClient(port=sim.port, baudrate=9600, timeout=0.3, retries=0)
        assert await client.connect()
        try:
            yield sim, client
        finally:
            client.close()


async def test_pymodbus_reads_temperature_and_humidity(bus: Bus) -> None:
    sim, client = bus
    for slave, (temperature, humidity) in ROOM.items():
        rr = await client.read_input_registers(address=1, count=2, device_id=slave)
        assert not rr.isError()
        assert values(rr.registers) == {"temperature": temperature, "humidity": humidity}
    rr = await client.read_input_registers(address=2, count=1, device_id=1)
    assert rr.registers == [612]
    rr = await client.read_input_registers(address=1, count=1, device_id=1)
    assert rr.registers == [(-34) & 0xFFFF]  # signed x10
    assert sim.responses_sent == 4


async def test_exceptions_and_silence(bus: Bus) -> None:
    sim, client = bus
    rr = await client.read_input_registers(address=3, count=1, device_id=1)
    assert rr.isError() and rr.exception_code == ILLEGAL_DATA_ADDRESS
    rr = await client.read_input_registers(address=1, count=3, device_id=1)
    assert rr.isError() and rr.exception_code == ILLEGAL_DATA_ADDRESS
    rr = await client.read_coils(address=0, count=1, device_id=1)
    assert rr.isError() and rr.exception_code == ILLEGAL_FUNCTION
    with pytest.raises(ModbusIOException):  # nobody at slave 9 on this bus: a timeout, as on RS-485
        await client.read_input_registers(address=1, count=2, device_id=9)
    assert sim.requests_ignored == 1
    rr = await client.read_input_registers(address=1, count=2, device_id=7)  # the bus still works
    assert values(rr.registers) == {"temperature": 22.5, "humidity": 40.0}
    rr = await client.read_holding_registers(address=0x0101, count=2, device_id=7)
    assert rr.registers == [7, 0]  # configured slave id, baud code 9600


async def test_lost_and_corrupt_answers_time_out_then_recover(bus: Bus) -> None:
    sim, client = bus
    sim.drop_next(1)
    with pytest.raises(ModbusIOException):
        await client.read_input_registers(address=1, count=2, device_id=1)
    sim.corrupt_next(1)
    with pytest.raises(ModbusIOException):  # pymodbus rejects the bad CRC and times out
        await client.read_input_registers(address=1, count=2, device_id=1)
    assert sim.frames_dropped == 1 and sim.frames_corrupted == 1
    rr = await client.read_input_registers(address=1, count=2, device_id=1)
    assert values(rr.registers)["temperature"] == -3.4


async def test_stuck_and_drift(bus: Bus) -> None:
    sim, client = bus
    sim.stuck(5.5)
    rr = await client.read_input_registers(address=1, count=2, device_id=7)
    assert values(rr.registers) == {"temperature": 5.5, "humidity": 40.0}
    sim.stuck(None)
    sim.drift(600.0)  # 10 degC per second, to see it within a test
    await asyncio.sleep(0.3)
    rr = await client.read_input_registers(address=1, count=1, device_id=7)
    drifted = values(rr.registers)["temperature"]
    assert 22.5 + 2.0 < drifted < 22.5 + 10.0
    sim.drift(0.0)
    rr = await client.read_input_registers(address=1, count=1, device_id=7)
    assert values(rr.registers)["temperature"] == 22.5


async def test_raw_frames_and_line_noise_from_master() -> None:
    sim = ModbusProbeSimulator({3: lambda: (4.0, 60.0)})
    async with running(sim):
        port = serial.Serial(sim.port, 9600, timeout=0)
        try:
            request = read_input_registers_request(3, 1, 2)
            port.write(b"\x55\xaa\x01" + request)  # noise before the request: CRC finds the frame
            got = bytearray()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            while len(got) < 9 and loop.time() < deadline:
                await asyncio.sleep(0.01)
                got += port.read(64)
            frame = bytes(got)
            assert crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")
            assert decode_rtu_frame(frame)["as_th_probe"] == {"temperature": 4.0, "humidity": 60.0}
            assert sim.requests_bad >= 1
        finally:
            port.close()


@settings(max_examples=200, deadline=None)
@given(garbage=st.lists(st.binary(max_size=20), max_size=8))
def test_master_garbage_never_breaks_the_probe(garbage: list[bytes]) -> None:
    sim = ModbusProbeSimulator({1: lambda: (4.0, 60.0)})
    try:
        for chunk in garbage:
            sim._on_data(chunk)  # the pty read callback, fed directly
        sim._decoder.reset()  # a real master waits out a silence before its next request
        sim._on_data(read_input_registers_request(1, 1, 2))
        assert sim.responses_sent >= 1
    finally:
        sim.close()
