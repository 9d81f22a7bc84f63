"""Modbus RTU probe transport against the probe simulator on a real pty (pymodbus client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest
from serial_helpers import CLOCK, Collector, events_to

from devices.errors import TransportError
from edge.supervisor import DeviceHealthState
from edge.transports.modbus import ModbusProbeTransport
from shelfsense.config import ModbusProbeConfig
from shelfsense.contract import Event, SensorReading
from simulators.modbus_probe import ModbusProbeSimulator


async def test_polls_temperature_and_humidity_and_counts_bad_answers() -> None:
    sim = ModbusProbeSimulator({3: lambda: (4.2, 55.5)})
    sim_task = asyncio.create_task(sim.run())
    received: list[SensorReading] = []

    async def sink(events: Sequence[Event]) -> None:
        received.extend(e for e in events if isinstance(e, SensorReading))

    health = DeviceHealthState("probe-1")
    config = ModbusProbeConfig(
        port=sim.port, slave=3, sensor_id="probe-1", zone="cold-room", poll_interval_s=0.05
    )
    transport = ModbusProbeTransport(config, health, events_to(sink), clock=CLOCK, timeout_s=0.3)
    task = asyncio.create_task(transport.run())
    try:
        async with asyncio.timeout(10):
            while len(received) < 4:
                await asyncio.sleep(0.02)
        sim.corrupt_next(1)
        async with asyncio.timeout(10):
            while health.frames_bad < 1:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sim_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim_task
        sim.close()
    assert {(r.quantity, r.value, r.unit) for r in received} == {
        ("temperature", 4.2, "degC"),
        ("humidity", 55.5, "%RH"),
    }
    assert {(r.sensor_id, r.zone) for r in received} == {("probe-1", "cold-room")}
    assert health.connected and health.frames_ok >= 2 and health.frames_bad >= 1


async def test_silent_probe_is_lost() -> None:
    sim = ModbusProbeSimulator({1: lambda: (4.0, 50.0)})
    sim_task = asyncio.create_task(sim.run())
    config = ModbusProbeConfig(port=sim.port, slave=9, sensor_id="probe-9", poll_interval_s=0.01)
    transport = ModbusProbeTransport(
        config, DeviceHealthState("probe-9"), Collector(), clock=CLOCK, timeout_s=0.1
    )
    try:
        with pytest.raises(TransportError, match="stopped answering"):
            await asyncio.wait_for(transport.run(), 10)
    finally:
        sim_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim_task
        sim.close()
