"""Bounded outbox (telemetry downsampled first), alarms jumping a backlog, clock sanity."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from edge_harness import CloudChild

from edge.clock import EdgeClock
from edge.outbox import Outbox, OutboxBudget
from edge.status import read_status
from edge.sync import SyncClient, sync_once
from shelfsense.contract import (
    DeviceHealth,
    Event,
    LocalAlarm,
    SensorReading,
    StockMovement,
    TagObservation,
)

# An hour ago, on a whole hour: the 600 s downsampling buckets are aligned on the epoch.
T0 = datetime.fromtimestamp((time.time() // 3600 - 1) * 3600, UTC)
EPC = "3034ABCD0000000000000001"


def reading(sensor: str, value: float, seconds: float) -> SensorReading:
    return SensorReading(
        sensor_id=sensor,
        quantity="temperature",
        value=value,
        unit="degC",
        time=T0 + timedelta(seconds=seconds),
    )


def alarm(value: float) -> LocalAlarm:
    return LocalAlarm(
        zone="cold", sensor_id="p1", rule="max_temperature", state="raised", value=value, limit=8.0, at=T0
    )


def health(n: int) -> DeviceHealth:
    return DeviceHealth(device_id="dev-1", connected=True, at=T0 + timedelta(seconds=n))


def observation(seconds: float, count: int, rssi: float) -> TagObservation:
    at = T0 + timedelta(seconds=seconds)
    return TagObservation(
        epc=EPC,
        reader="r1",
        antenna=1,
        rssi=rssi,
        first_seen=at,
        last_seen=at + timedelta(seconds=1),
        count=count,
    )


@pytest.fixture
async def small_outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    budget = OutboxBudget(max_events=10, interval_s=600, check_every_s=0)
    async with Outbox(tmp_path / "edge.db", "NORMAL", budget) as box:
        yield box


async def test_over_budget_telemetry_is_downsampled_stock_and_alarms_kept(
    small_outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = small_outbox
    caplog.set_level(logging.WARNING, logger="edge.outbox")
    assert await box.append([health(n) for n in range(10)]) == list(range(1, 11))
    assert not box.degraded

    # 300 readings of two sensors in one interval, a stock movement, an alarm and tag reads.
    values = [5.0 + (n % 37) / 10 for n in range(300)]
    burst: list[Event] = [reading(f"p{n % 2}", v, n) for n, v in enumerate(values)]
    burst += [StockMovement(epc=EPC, to_location="dock", at=T0), alarm(9.1)]
    burst += [observation(n, 10, -60 + n) for n in range(5)]
    seqs = await box.append(burst)
    assert box.degraded
    assert seqs[-7:-5] == [11, 12]  # the stock movement and the alarm are queued at once
    assert all(s is None for s in seqs[:300] + seqs[-5:])
    status = read_status(tmp_path / "edge.db")
    assert status["degraded"] and status["telemetry_downsampled"] == 305
    assert status["sensors"], "the ledger still has the latest value of a downsampled sensor"
    assert any("DEGRADED" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)

    queued = await box.flush_buckets(force=True)
    events = [e.event for e in await box.pending(1000)]
    assert [e.seq for e in await box.pending(1000)] == list(range(1, 13 + queued))  # still no holes
    for sensor in ("p0", "p1"):
        mine = [e for e in events if isinstance(e, SensorReading) and e.sensor_id == sensor]
        originals = [r for r in burst if isinstance(r, SensorReading) and r.sensor_id == sensor]
        assert 1 <= len(mine) <= 3
        assert min(e.value for e in mine) == min(r.value for r in originals)
        assert max(e.value for e in mine) == max(r.value for r in originals)
        assert max(e.time for e in mine) == max(r.time for r in originals)  # the last one is kept
    merged = [e for e in events if isinstance(e, TagObservation)]
    assert len(merged) == 1
    assert (merged[0].count, merged[0].rssi) == (50, -56)
    assert merged[0].first_seen == T0 and merged[0].last_seen == T0 + timedelta(seconds=5)

    # Once the cloud caught up, the outbox leaves the degraded state (and says so).
    await box.ack((await box.stats()).last_seq)
    assert await box.append([health(99)]) != [None]
    assert not box.degraded
    assert not read_status(tmp_path / "edge.db")["degraded"]
    assert any("back within budget" in r.getMessage() for r in caplog.records)


async def test_degraded_state_survives_a_restart_and_buckets_are_durable(tmp_path: Path) -> None:
    budget = OutboxBudget(max_events=2, interval_s=600, check_every_s=0)
    async with Outbox(tmp_path / "edge.db", "NORMAL", budget) as box:
        await box.append([health(1), health(2)])
        assert await box.append([reading("p0", 4.0, 1), reading("p0", 6.0, 2)]) == [None, None]
    async with Outbox(tmp_path / "edge.db", "NORMAL", budget) as box:
        assert box.degraded
        assert await box.flush_buckets(force=True) == 2  # min (4.0) and max/last (6.0)
        values = sorted(e.event.value for e in await box.pending(10) if isinstance(e.event, SensorReading))
        assert values == [4.0, 6.0]


async def test_age_budget_degrades_too(tmp_path: Path) -> None:
    budget = OutboxBudget(max_age_s=0.2, check_every_s=0)
    async with Outbox(tmp_path / "edge.db", "NORMAL", budget) as box:
        await box.append([health(1)])
        await asyncio.sleep(0.3)
        assert await box.append([reading("p0", 4.0, 1)]) == [None]
        assert box.degraded and "old" in box.degraded_reasons[0]


# ------------------------------------------------------------------------ alarms jump the queue


@pytest.fixture
async def real_cloud(tmp_path: Path) -> AsyncIterator[CloudChild]:
    cloud = CloudChild(tmp_path / "cloud")
    await asyncio.to_thread(cloud.register_edge, "edge-1")
    await asyncio.to_thread(cloud.start)
    yield cloud
    await asyncio.to_thread(cloud.stop)


@pytest.mark.integration
async def test_live_alarm_jumps_a_backlog_and_the_sequence_still_completes(
    tmp_path: Path, real_cloud: CloudChild
) -> None:
    async with Outbox(tmp_path / "edge.db", "NORMAL") as box:
        await box.append([health(n) for n in range(2500)])
        (alarm_seq,) = await box.append([alarm(9.5)])
        await box.append([health(n) for n in range(500)])
        client = SyncClient(real_cloud.url, "edge-1", real_cloud.tokens["edge-1"])
        try:
            await sync_once(box, client, 1000)
            # After the first round trip the cloud has the first batch AND the alarm 2,500 events later.
            assert real_cloud.seqs("edge-1") == [*range(1, 1001), alarm_seq]
            assert real_cloud.acked_through("edge-1") == 1000
            while (await box.stats()).pending:
                await sync_once(box, client, 1000)
        finally:
            await client.aclose()
        stats = await box.stats()
    assert real_cloud.seqs("edge-1") == list(range(1, 3002))
    assert stats.acked_through == 3001 == real_cloud.acked_through("edge-1")
    assert real_cloud.duplicates_received("edge-1") == 0  # the alarm was not sent twice
    [stored] = real_cloud.payloads("edge-1", "local_alarm")
    assert stored["value"] == 9.5


# ------------------------------------------------------------------------------- clock sanity


def test_clock_skew_detected_corrected_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    wall, mono = [1_000_000.0 + 3600], [50.0]  # the edge's wall clock is one hour fast
    clock = EdgeClock(5.0, wall=lambda: wall[0], monotonic=lambda: mono[0])
    caplog.set_level(logging.WARNING, logger="edge.clock")
    cloud_date = "Mon, 12 Jan 1970 13:46:40 GMT"  # unix 1_000_000
    clock.observe(cloud_date, 49.9, 50.1)
    assert clock.skewed and abs(clock.skew_s - 3599.5) < 0.01  # type: ignore[operator]
    assert abs(clock.now().timestamp() - 1_000_000.5) < 0.01
    wall[0] -= 86_400  # the wall clock is stepped by a day: the corrected time is not
    mono[0] += 10
    assert abs(clock.now().timestamp() - 1_000_010.5) < 0.01
    clock.observe(cloud_date, 49.9, 50.1)
    assert sum("skewed" in r.getMessage() for r in caplog.records) == 1
    assert clock.ahead(clock.now() + timedelta(seconds=60))
    assert not clock.ahead(clock.now() + timedelta(seconds=1))
    wall[0], mono[0] = 1_000_000.5, 50.0
    clock.observe(cloud_date, 49.9, 50.1)
    assert not clock.skewed
    assert any("back in sync" in r.getMessage() for r in caplog.records)
    clock.observe("not a date", 1, 2)  # ignored, not an error
    assert not clock.skewed


@pytest.mark.integration
async def test_skew_measured_against_the_real_clouds_date_header(
    tmp_path: Path, real_cloud: CloudChild
) -> None:
    fast = EdgeClock(5.0, wall=lambda: time.time() + 600)
    honest = EdgeClock(5.0)
    async with Outbox(tmp_path / "edge.db", "NORMAL") as box:
        await box.append([health(1)])
        for clock in (fast, honest):
            client = SyncClient(real_cloud.url, "edge-1", real_cloud.tokens["edge-1"], clock=clock)
            try:
                await sync_once(box, client, 10)
            finally:
                await client.aclose()
            await box.append([health(2)])
    assert fast.skewed and 597 < (fast.skew_s or 0) < 602
    assert abs(fast.now().timestamp() - time.time()) < 3
    assert not honest.skewed and abs(honest.skew_s or 99) < 2


def test_a_slow_response_never_looks_like_a_skewed_clock() -> None:
    """NTP-style bounds (RFC 5905 section 8: offset from the send and receive times): the cloud's
    Date lies somewhere inside the round trip, so a 30 s round trip to an honest cloud leaves the
    state alone, while a short one still detects a real skew and a long one a huge skew."""
    wall, mono = [1_000_000.5], [100.0]  # honest wall clock
    clock = EdgeClock(5.0, wall=lambda: wall[0], monotonic=lambda: mono[0])
    # Sent at mono 70 (wall 999_970.5), received now: the cloud answered mid-way, at 999_985.
    clock.observe("Mon, 12 Jan 1970 13:46:25 GMT", 70.0, 100.0)
    assert not clock.skewed and clock.uncertain == 1
    clock.observe("Mon, 12 Jan 1970 13:46:40 GMT", 99.8, 100.0)  # quick: certainly in sync
    assert not clock.skewed and clock.uncertain == 1
    wall[0] += 60  # stepped a minute ahead: a quick round trip proves it
    clock.observe("Mon, 12 Jan 1970 13:46:40 GMT", 99.8, 100.0)
    assert clock.skewed and 59 < (clock.skew_s or 0) < 61
    clock.observe("Mon, 12 Jan 1970 13:46:25 GMT", 70.0, 100.0)  # slow again: no flapping back
    assert clock.skewed
