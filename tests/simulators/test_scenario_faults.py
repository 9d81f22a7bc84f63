"""Scenario fault events: the model, the schedule, and their effect through the simulators' hooks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import serial

from devices.errors import DecodeError
from devices.modbus import decode_th_registers
from devices.uhf import UhfFrameDecoder, multi_poll_command
from edge.clock import EdgeClock
from edge.supervisor import DeviceHealthState, supervise
from edge.transports.protocol import Committed, Emission, TagReads
from edge.transports.serial_uhf import UhfSerialTransport
from shelfsense.config import UhfReaderConfig
from simulators.faults import FaultScheduler
from simulators.modbus_probe import ModbusProbeSimulator
from simulators.scenario import (
    SCENARIO_DIR,
    DemoScenario,
    FaultEvent,
    PortalSpec,
    ScenarioError,
    ScenarioRunner,
    ScenarioSpec,
    load_scenario,
)
from simulators.uhf_reader import UhfReaderSimulator


def spec_with(events: list[dict[str, Any]], cycle_s: float = 20.0) -> ScenarioSpec:
    return ScenarioSpec.model_validate(
        {
            "cycle_s": cycle_s,
            "min_passage_s": 3.0,
            "portals": [PortalSpec(id="dock-1", pallets_in=1, entry_window=(0.0, 0.0), exits=[])],
            "events": events,
        }
    )


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(*things: Any) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(t.run()) for t in things]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for thing in things:
            thing.close()


# ------------------------------------------------------------------ model and schedule


def test_events_fire_every_cycle_at_fraction_or_seconds() -> None:
    scenario = DemoScenario.from_spec(
        spec_with([{"kind": "noise", "at": 0.5, "count": 8}, {"kind": "drop", "at_s": 2.0}])
    )
    fired = [(t, e.kind) for t, e in scenario.faults_between(0.0, 45.0)]
    assert fired == [(2.0, "drop"), (10.0, "noise"), (22.0, "drop"), (30.0, "noise"), (42.0, "drop")]
    assert scenario.faults_between(10.0, 10.0) == []
    assert [t for t, _ in scenario.faults_between(10.0, 22.0)] == [10.0]  # half-open interval


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"kind": "noise"}, "exactly one of at"),
        ({"kind": "noise", "at": 0.1, "at_s": 1.0}, "exactly one of at"),
        ({"kind": "drift", "at": 0.1}, "value"),
        ({"kind": "meltdown", "at": 0.1}, "kind"),
        ({"kind": "noise", "at_s": 25.0}, "beyond the 20.0 s cycle"),
    ],
)
def test_bad_events_are_refused(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec_with([event])


def test_shipped_scenarios_use_fault_events() -> None:
    dock = load_scenario(SCENARIO_DIR / "dock.toml").spec.events
    cold = load_scenario(SCENARIO_DIR / "cold_room.toml").spec.events
    assert {e.kind for e in dock} >= {"noise", "corrupt", "collision", "reboot"}
    assert {e.kind for e in cold} >= {"disconnect", "stuck", "drift"}


def test_scheduler_refuses_events_no_simulator_can_apply() -> None:
    probe_only = {"probe": [object()]}
    runner = ScenarioRunner(
        DemoScenario.from_spec(spec_with([{"kind": "noise", "at": 0.1, "target": "dock-9"}]))
    )
    with pytest.raises(ScenarioError, match="names no simulator"):
        FaultScheduler(runner, probe_only)
    runner = ScenarioRunner(
        DemoScenario.from_spec(spec_with([{"kind": "collision", "at": 0.1, "target": "probe"}]))
    )
    with pytest.raises(ScenarioError, match="can apply"):
        FaultScheduler(runner, probe_only)


# ------------------------------------------------------------------ through the simulators


async def test_corrupt_frames_event_counts_bad_frames_while_good_frames_still_arrive() -> None:
    """A scenario's corrupt event reaches the UHF simulator; the edge's decoder counts frames_bad."""
    spec = spec_with([{"kind": "corrupt", "at_s": 0.8, "target": "dock-1.outer", "count": 6}])
    runner = ScenarioRunner(DemoScenario.from_spec(spec))
    # The pallet is under the outer reader during the first seconds of the cycle.
    reader = UhfReaderSimulator(runner.field_source("outer", "dock-1"), reads_per_s=20)
    scheduler = FaultScheduler(runner, {"dock-1.outer": [reader], "dock-1.inner": []})
    health = DeviceHealthState("outer")
    reads: list[str] = []

    def emit(emission: Emission) -> asyncio.Future[Committed]:
        assert isinstance(emission, TagReads)
        reads.extend(read.epc for read in emission.reads)
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        future.set_result([])
        return future

    transport = UhfSerialTransport(
        UhfReaderConfig(id="outer", port=reader.port), health, emit, clock=EdgeClock()
    )
    stop = asyncio.Event()
    async with running(reader, scheduler):
        edge = asyncio.create_task(supervise("outer", transport.run, health, 0.05, 0.2, stop))
        try:
            await until(lambda: scheduler.applied != [])
            ok_after_fault = health.frames_ok
            await until(lambda: health.frames_bad >= 6 and health.frames_ok > ok_after_fault + 20)
        finally:
            stop.set()
            await asyncio.wait_for(edge, 5)
    assert scheduler.applied[0][1:] == ("corrupt", "dock-1.outer", 1)
    assert reader.frames_corrupted == 6
    assert health.frames_bad >= 6  # every corrupted frame counted (resync may reject a few more)
    assert len(set(reads)) == 8  # every case of the pallet still read


async def test_disconnect_silences_the_pty_for_a_while_then_it_answers_again() -> None:
    reader = UhfReaderSimulator(lambda: [("3034ABCD0000000000000001", -50)], reads_per_s=50)
    async with running(reader):
        with serial.Serial(reader.port, 115200, timeout=0) as port:
            decoder = UhfFrameDecoder()
            port.write(multi_poll_command())
            await until(lambda: bool(decoder.feed(port.read(4096))))
            reader.disconnect(0.5)
            await asyncio.sleep(0.1)
            port.read(65536)  # what was in flight
            await asyncio.sleep(0.2)
            assert decoder.feed(port.read(65536)) == []  # unplugged: nothing on the line
            await until(lambda: bool(decoder.feed(port.read(4096))))  # plugged back: still polling
    assert reader.rounds_done > 0


async def test_stuck_and_drift_events_reach_the_probe_and_are_undone() -> None:
    spec = spec_with(
        [
            {"kind": "stuck", "at_s": 0.0, "target": "probe", "value": 30.0, "duration_s": 0.4},
            {"kind": "drift", "at_s": 1.0, "target": "probe", "value": 600.0, "duration_s": 0.5},
        ]
    )
    runner = ScenarioRunner(DemoScenario.from_spec(spec))
    probe = ModbusProbeSimulator({1: lambda: (4.0, 60.0)})
    scheduler = FaultScheduler(runner, {"probe": [probe]})
    async with running(probe, scheduler):
        await until(lambda: len(scheduler.applied) == 1)
        assert probe.reading(1) == (30.0, 60.0)
        await until(lambda: probe.reading(1) == (4.0, 60.0))  # unstuck after duration_s
        await until(lambda: len(scheduler.applied) == 2)
        await until(lambda: probe.reading(1)[0] > 5.0)  # 10 degC per second
        drifted = probe.reading(1)[0]
        await until(lambda: probe.reading(1) == (4.0, 60.0))
    assert drifted > 5.0


def test_absurd_probe_value_is_refused_by_the_codec() -> None:
    """What a drifting probe ends up sending (300 degC) is bad input for the edge, not a reading."""
    with pytest.raises(DecodeError, match="outside the probe range"):
        decode_th_registers([3000, 500])


async def test_collision_event_floods_the_uhf_field() -> None:
    epc = "3034ABCD0000000000000001"
    reader = UhfReaderSimulator(lambda: [(epc, -50)], reads_per_s=50)
    runner = ScenarioRunner(
        DemoScenario.from_spec(
            spec_with([{"kind": "collision", "at_s": 0.0, "count": 30, "duration_s": 0.5}])
        )
    )
    scheduler = FaultScheduler(runner, {"dock-1.outer": [reader]})
    seen: set[str] = set()
    async with running(reader, scheduler):
        with serial.Serial(reader.port, 115200, timeout=0) as port:
            decoder = UhfFrameDecoder()
            port.write(multi_poll_command())

            def poll() -> bool:
                for frame in decoder.feed(port.read(65536)):
                    seen.add(frame.params[3:-2].hex().upper())
                return len(seen) >= 31

            await until(poll)
    assert epc in seen and len(seen) == 31


def test_fault_event_model_offsets() -> None:
    assert FaultEvent(kind="noise", at=0.25).offset_s(40.0) == 10.0
    assert FaultEvent(kind="noise", at_s=3.5).offset_s(40.0) == 3.5
