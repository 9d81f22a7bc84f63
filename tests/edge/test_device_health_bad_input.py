"""Bad input per device ends up in its DeviceHealthState and in `shelfsense edge status`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from serial_helpers import CLOCK, events_to

from edge.outbox import Outbox, OutboxBudget
from edge.status import read_status
from edge.supervisor import DeviceHealthState, supervise
from edge.transports.modbus import ModbusProbeTransport
from shelfsense.config import ModbusProbeConfig
from shelfsense.contract import Event, SensorReading
from simulators.modbus_probe import ModbusProbeSimulator


async def test_absurd_probe_values_are_counted_bad_and_never_become_readings() -> None:
    sim = ModbusProbeSimulator({1: lambda: (4.0, 60.0)})
    sim_task = asyncio.create_task(sim.run())
    readings: list[SensorReading] = []

    async def sink(events: Sequence[Event]) -> None:
        readings.extend(e for e in events if isinstance(e, SensorReading))

    health = DeviceHealthState("probe-1")
    config = ModbusProbeConfig(port=sim.port, sensor_id="probe-1", poll_interval_s=0.05)
    stop = asyncio.Event()
    edge = asyncio.create_task(
        supervise(
            "probe-1",
            ModbusProbeTransport(config, health, events_to(sink), clock=CLOCK, timeout_s=0.3).run,
            health,
            stop_event=stop,
        )
    )
    try:
        async with asyncio.timeout(10):
            while len(readings) < 2:
                await asyncio.sleep(0.02)
            sim.absurd_next(3)  # 300 degC from a probe rated to 80, in well-formed frames
            while health.frames_bad < 3:
                await asyncio.sleep(0.02)
            count = len(readings)
            while len(readings) < count + 4:  # good values keep coming afterwards
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(edge, 5)
        sim_task.cancel()
        await asyncio.gather(sim_task, return_exceptions=True)
        sim.close()
    assert health.frames_bad == 3
    assert health.reconnects == 0  # a bad value is not a lost probe
    assert all(-40 <= r.value <= 100 for r in readings)
    assert {r.value for r in readings if r.quantity == "temperature"} == {4.0}


async def test_edge_status_lists_per_device_counters(tmp_path: Path) -> None:
    """The agent stores ``device.<id>.<field>`` counters; the status report groups them per device."""
    db = tmp_path / "edge.db"
    async with Outbox(db, "NORMAL", OutboxBudget()) as outbox:
        await outbox.add_counters(
            {
                "frames_bad": 7,
                "device.dock-1.outer.frames_ok": 120,
                "device.dock-1.outer.frames_bad": 7,
                "device.probe-1.reconnects": 2,
            }
        )
    assert read_status(db)["devices"] == {
        "dock-1.outer": {"frames_ok": 120, "frames_bad": 7, "reconnects": 0},
        "probe-1": {"frames_ok": 0, "frames_bad": 0, "reconnects": 2},
    }
    result = subprocess.run(
        [sys.executable, "-m", "shelfsense", "edge", "status", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["devices"]["dock-1.outer"]["frames_bad"] == 7
