"""A transport written only against edge.transports.protocol (one ``emit``, the injected clock)
works in the agent, and the agent's clock -- a ManualClock here, no patching -- drives the
smoothing decisions, the quality stage, the health reports and the batches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from edge_cloud_stub import FakeCloud, Request
from pydantic import BaseModel

from devices.readings import TagRead
from edge.agent import EdgeAgent
from edge.clock import Clock, ManualClock
from edge.smoothing import TagSmoother
from edge.supervisor import DeviceHealthState
from edge.transports import registry
from edge.transports.protocol import Committed, Emit, Events, TagReads
from edge.transports.registry import Device, DeviceWiring, register_transport
from shelfsense.config import EdgeSettings, Settings, ZoneLimits
from shelfsense.contract import DeviceHealth, SensorReading, TagObservation

EPC = "3034ABCD0000000000000001"
# In the past: an agent that read the wall clock instead would flush the smoother at once and
# flag the readings stale.
START = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
Responder = Callable[[Request], tuple[int, bytes]]


class ProbeReaderConfig(BaseModel):
    id: str


class ProbeEdgeSettings(EdgeSettings):
    probe_readers: list[ProbeReaderConfig] = []


class ProtocolOnlyTransport:
    """Knows the agent only through ``emit`` and ``clock``: a tag reader and a probe in one."""

    def __init__(self, config: ProbeReaderConfig, emit: Emit, clock: Clock) -> None:
        self.config = config
        self.health = DeviceHealthState(config.id)
        self.emit = emit
        self.clock = clock
        self.committed: list[Committed] = []

    def reading(self, value: float) -> SensorReading:
        return SensorReading(
            sensor_id=f"{self.config.id}.t",
            quantity="temperature",
            value=value,
            unit="degC",
            time=self.clock.now(),
            zone="cold-room",
        )

    async def run(self) -> None:
        self.health.mark_connected()
        now = self.clock.now()
        accepted = self.emit(TagReads(self.config.id, [TagRead(epc=EPC, rssi=-50.0, pc=0x3000)] * 3, now))
        assert accepted.done()  # tag reads are accepted at once
        self.committed.append(await self.emit(Events([self.reading(9.5)])))
        self.committed.append(await self.emit(Events([self.reading(9.6)], durable=True)))
        self.health.frame_ok(1, now)
        await asyncio.Event().wait()  # a connection that stays up until the agent stops


built: list[ProtocolOnlyTransport] = []


def _build(wiring: DeviceWiring, config: ProbeReaderConfig) -> Device:
    wiring.smoothers.setdefault(config.id, TagSmoother(config.id, 2.0, "dock", grace_s=3.0))
    transport = ProtocolOnlyTransport(config, wiring.emit, wiring.clock)
    built.append(transport)
    return config.id, transport.health, transport


@pytest.fixture
def probe_kind() -> Iterator[None]:
    register_transport("protocol-probe", "probe_readers", _build)
    yield
    registry._KINDS.pop("protocol-probe")
    built.clear()


def _ack(request: Request) -> tuple[int, bytes]:
    acked = request.batch.events[-1].seq if request.batch.events else 0
    return 200, json.dumps({"acked_through": acked, "accepted": 0, "duplicates": 0}).encode()


async def test_a_protocol_only_transport_runs_in_the_agent_on_the_agents_clock(
    cloud: Callable[[Responder], Awaitable[FakeCloud]], tmp_path: Path, probe_kind: object
) -> None:
    fake = await cloud(_ack)
    edge = ProbeEdgeSettings.model_validate(
        {
            "cloud_url": fake.url,
            "db_path": tmp_path / "edge.db",
            "sync_interval_s": 0.05,
            "health_interval_s": 0.1,
            "probe_readers": [{"id": "toy-1"}],
        }
    )
    clock = ManualClock(START)
    settings = Settings(demo=True, edge=edge, zones=[ZoneLimits(id="cold-room", max_temp_c=8.0)])
    agent = EdgeAgent(settings, cycle_s=0.05, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))

    def events() -> list[object]:
        return [se.event for r in fake.requests for se in r.batch.events]

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(15):
            while not predicate():
                await asyncio.sleep(0.02)

    try:
        # Readings, their alarm and three health reports: many agent cycles have run meanwhile.
        await until(lambda: sum(isinstance(e, DeviceHealth) for e in events()) >= 3)
        await until(lambda: sum(isinstance(e, SensorReading) for e in events()) == 2)
        assert not any(isinstance(e, TagObservation) for e in events())  # the clock stood still
        clock.advance(2.0)  # the smoother's cycle has elapsed now (within its grace), and only now
        await until(lambda: any(isinstance(e, TagObservation) for e in events()))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    (transport,) = built
    # seq numbers of the committed batches: the first raised an alarm, committed with it
    assert [len(c) for c in transport.committed] == [2, 1]
    assert all(isinstance(seq, int) for c in transport.committed for seq in c)
    readings = [e for e in events() if isinstance(e, SensorReading)]
    assert [(r.value, r.time, tuple(r.flags)) for r in readings] == [(9.5, START, ()), (9.6, START, ())]
    assert [e.kind for e in events() if e.kind == "local_alarm"] == ["local_alarm"]  # type: ignore[attr-defined]
    observation = next(e for e in events() if isinstance(e, TagObservation))
    assert (observation.reader, observation.count, observation.first_seen) == ("toy-1", 3, START)
    stamps = {e.at for e in events() if isinstance(e, DeviceHealth)} | {
        r.batch.created_at for r in fake.requests
    }
    assert stamps <= {START, START + timedelta(seconds=2)}


def test_extras_commit_only_with_durable_events() -> None:
    with pytest.raises(ValueError, match="durable"):
        Events([], extras=[object()])  # type: ignore[list-item]
