"""pymodbus on both ends: the edge's Modbus transport / client against pymodbus' RTU server over socat."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from devices.errors import TransportError
from devices.modbus import ILLEGAL_DATA_ADDRESS, ILLEGAL_FUNCTION, decode_th_registers
from edge.clock import EdgeClock
from edge.supervisor import DeviceHealthState
from edge.transports.modbus import ModbusProbeTransport
from edge.transports.protocol import Committed, Emission, Events
from shelfsense.config import ModbusProbeConfig
from shelfsense.contract import SensorReading
from simulators.modbus_server import PymodbusProbeServer

pytestmark = pytest.mark.skipif(
    shutil.which("socat") is None, reason="socat not installed (the test command apt-get installs it)"
)

FREEZER, CHILLER = 1, 7


def reader(value: list[float]) -> Callable[[], tuple[float, float]]:
    """A probe that reports whatever ``value`` holds at the moment it is read."""
    return lambda: (value[0], value[1])


@pytest.fixture
async def bus() -> AsyncIterator[tuple[PymodbusProbeServer, dict[int, list[float]]]]:
    """Two probes on one bus; each test may change ``values[slave]`` = [degC, %RH] between reads."""
    values = {FREEZER: [-12.5, 61.2], CHILLER: [3.9, 85.0]}
    server = PymodbusProbeServer({slave: reader(v) for slave, v in values.items()})
    await server.start()
    task = asyncio.create_task(server.run())
    try:
        yield server, values
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.close()
    assert not Path(server.port).exists(), "close() must remove the socat links"


def _done() -> asyncio.Future[Committed]:
    future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
    future.set_result([])
    return future


async def poll_with_edge_transport(port: str, slave: int, count: int = 2) -> list[SensorReading]:
    """Run the edge's real ModbusProbeTransport until it delivered ``count`` readings."""
    received: list[SensorReading] = []

    def emit(emission: Emission) -> asyncio.Future[Committed]:
        assert isinstance(emission, Events)
        received.extend(e for e in emission.events if isinstance(e, SensorReading))
        return _done()

    config = ModbusProbeConfig(port=port, slave=slave, sensor_id=f"probe-{slave}", poll_interval_s=0.05)
    transport = ModbusProbeTransport(
        config, DeviceHealthState(f"probe-{slave}"), emit, clock=EdgeClock(), timeout_s=1.0
    )
    task = asyncio.create_task(transport.run())
    try:
        async with asyncio.timeout(15):
            while len(received) < count:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return received


async def test_edge_transport_reads_two_probes_on_one_bus(bus: tuple[PymodbusProbeServer, dict]) -> None:
    server, _ = bus
    # One master on the bus at a time, as on RS-485: poll the two slaves one after the other.
    freezer = await poll_with_edge_transport(server.port, FREEZER)
    chiller = await poll_with_edge_transport(server.port, CHILLER)
    assert {(r.sensor_id, r.quantity, r.value, r.unit) for r in freezer} == {
        ("probe-1", "temperature", -12.5, "degC"),
        ("probe-1", "humidity", 61.2, "%RH"),
    }
    assert {(r.sensor_id, r.quantity, r.value) for r in chiller} == {
        ("probe-7", "temperature", 3.9),
        ("probe-7", "humidity", 85.0),
    }
    assert server.requests_answered >= 2 and server.requests_ignored == 0


async def test_values_come_from_the_callables_at_each_request(
    bus: tuple[PymodbusProbeServer, dict[int, list[float]]],
) -> None:
    server, values = bus
    client = AsyncModbusSerialClient(port=server.port, baudrate=9600, timeout=1, retries=0)
    assert await client.connect()
    try:
        for temperature in (-40.0, -12.5, -0.1, 0.0, 21.7, 80.0):
            values[CHILLER][0] = temperature
            rr = await client.read_input_registers(1, count=2, device_id=CHILLER)
            assert not rr.isError()
            assert rr.registers[0] == round(temperature * 10) & 0xFFFF  # two's complement on the wire
            assert {m.quantity: m.value for m in decode_th_registers(rr.registers)} == {
                "temperature": temperature,
                "humidity": 85.0,
            }
        rr = await client.read_input_registers(2, count=1, device_id=FREEZER)
        assert rr.registers == [612]
    finally:
        client.close()


async def test_probe_register_map_and_refusals(bus: tuple[PymodbusProbeServer, dict]) -> None:
    server, _ = bus
    client = AsyncModbusSerialClient(port=server.port, baudrate=9600, timeout=1, retries=0)
    assert await client.connect()
    try:
        rr = await client.read_holding_registers(0x0101, count=2, device_id=CHILLER)
        assert rr.registers == [CHILLER, 0]  # configured slave id, baud code 9600
        rr = await client.read_input_registers(3, count=1, device_id=FREEZER)
        assert rr.isError() and rr.exception_code == ILLEGAL_DATA_ADDRESS
        rr = await client.write_register(0x0101, 5, device_id=CHILLER)
        assert rr.isError() and rr.exception_code == ILLEGAL_FUNCTION
        rr = await client.read_holding_registers(0x0101, count=1, device_id=CHILLER)
        assert rr.registers == [CHILLER]  # the refused write changed nothing
    finally:
        client.close()
    assert server.requests_refused == 1


async def test_unknown_slave_times_out_and_the_bus_keeps_working(
    bus: tuple[PymodbusProbeServer, dict],
) -> None:
    server, _ = bus
    client = AsyncModbusSerialClient(port=server.port, baudrate=9600, timeout=0.3, retries=0)
    assert await client.connect()
    try:
        with pytest.raises(ModbusIOException):  # nobody at slave 9: silence, as on RS-485
            await client.read_input_registers(1, count=2, device_id=9)
        rr = await client.read_input_registers(1, count=2, device_id=FREEZER)
        assert rr.registers == [(-125) & 0xFFFF, 612]
    finally:
        client.close()
    assert server.requests_ignored == 1

    config = ModbusProbeConfig(port=server.port, slave=9, sensor_id="probe-9", poll_interval_s=0.01)
    transport = ModbusProbeTransport(
        config, DeviceHealthState("probe-9"), lambda e: _done(), clock=EdgeClock(), timeout_s=0.2
    )
    with pytest.raises(TransportError, match="stopped answering"):
        await asyncio.wait_for(transport.run(), 15)


async def test_bad_slave_ids_are_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.\.247"):
        PymodbusProbeServer({0: lambda: (0.0, 0.0)})
    with pytest.raises(ValueError, match="at least one"):
        PymodbusProbeServer({})
