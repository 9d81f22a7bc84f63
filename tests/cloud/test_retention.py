"""Readings retention (cloud.retention) on SQLite and PostgreSQL: the roll-up equals an aggregate of
the raw rows it replaced, exactly the old raw rows go, late readings for a rolled-up period are
refused and counted, and the lot read model still equals a full recomputation afterwards."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import T0, Cloud
from conftest import batch as conftest_batch
from conftest import reading as conftest_reading
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select
from test_lot_readmodel import ACCUMULATING_EXAMPLES, World, _compare, _example
from test_lot_readmodel import START as LOTS_START

from cloud.admin import create_edge_async
from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.core.migrate import upgrade_to_head
from cloud.ingest.service import ingest_batch
from cloud.retention.rollup import PAST_RETENTION, bucket_floor, horizon, roll_up
from cloud.retention.tables import sensor_reading_rollups
from shelfsense.config import RetentionSettings
from shelfsense.contract import Batch

H = 3600.0
SPAN = timedelta(days=12)  # each example after the previous one: the horizon only moves forward
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)


class Site:
    def __init__(self, url: str) -> None:
        self.url = url
        self.examples = itertools.count()
        self.seq: dict[str, int] = {}
        self.migrated = False


async def post(engine: Any, site: Site, edge: str, events: list[dict[str, Any]]) -> int:
    """Ingest as an edge would; returns the events accepted (stored in the log)."""
    first = site.seq.get(edge, 1)
    body = {
        "v": 1,
        "edge_id": edge,
        "created_at": datetime.now(UTC).isoformat(),
        "events": [{"seq": first + i, "event": e} for i, e in enumerate(events)],
    }
    site.seq[edge] = first + len(events)
    return (await ingest_batch(engine, Batch.model_validate(body), {})).ack.accepted


def reading(
    moment: datetime, value: float, sensor: str, zone: str | None, quantity: str, flags: list[str]
) -> dict[str, Any]:
    return {
        "kind": "sensor_reading",
        "sensor_id": sensor,
        "quantity": quantity,
        "value": value,
        "unit": "degC" if quantity == "temperature" else "%RH",
        "time": moment.isoformat(),
        "zone": zone,
        "flags": flags,
    }


async def raw_rows(conn: Any, site_id: str) -> list[dict[str, Any]]:
    r = sensors_db.sensor_readings
    rows = await conn.execute(select(r).where(r.c.site_id == site_id).order_by(r.c.time, r.c.id))
    return [dict(row) for row in rows.mappings()]


def expected_rollup(
    rows: list[dict[str, Any]], cutoff: datetime, bucket_s: int
) -> dict[tuple[Any, ...], dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if db.utc(row["time"]) < cutoff and "out_of_range" not in row["flags"].split(","):
            key = (row["sensor_id"], row["quantity"], row["zone"] or "", bucket_floor(row["time"], bucket_s))
            groups[key].append(row)
    return {
        key: {
            "count": len(group),
            "min_value": min(g["value"] for g in group),
            "max_value": max(g["value"] for g in group),
            "mean_value": sum(g["value"] for g in group) / len(group),
            "first_time": min(db.utc(g["time"]) for g in group),
            "last_time": max(db.utc(g["time"]) for g in group),
        }
        for key, group in groups.items()
    }


async def _rollup_example(site: Site, rnd: random.Random) -> None:
    n = next(site.examples)
    t0 = START + n * SPAN
    site_id = f"site-{n}"
    engine = db.create_engine(site.url)
    try:
        if not site.migrated:
            await upgrade_to_head(engine)
            site.migrated = True
        edge = (await create_edge_async(engine, site_id, f"edge-{n}"))[0]
        events = []
        for _ in range(rnd.randint(0, 120)):
            quantity = rnd.choice(["temperature", "temperature", "humidity"])
            moment = t0 + timedelta(seconds=rnd.randint(0, 10 * 86400))
            flags = ["out_of_range"] if rnd.random() < 0.1 else []
            zone = rnd.choice(["cold-1", "cold-2", None])
            value = round(rnd.uniform(-30, 40), 2)
            events.append(reading(moment, value, rnd.choice(["p1", "p2"]), zone, quantity, flags))
        for start in range(0, len(events), 40):
            await post(engine, site, edge, events[start : start + 40])
        async with engine.connect() as conn:
            before = await raw_rows(conn, site_id)
        bucket_s = rnd.choice([900, 3600, 86400])
        cutoff = bucket_floor(t0 + timedelta(seconds=rnd.randint(0, 11 * 86400)), bucket_s)
        result = await roll_up(engine, cutoff, bucket_s, max_buckets=100_000)
        assert result.horizon == cutoff
        roll = sensor_reading_rollups
        async with engine.connect() as conn:
            after = await raw_rows(conn, site_id)
            stored = (await conn.execute(select(roll).where(roll.c.site_id == site_id))).mappings().all()
        want = expected_rollup(before, cutoff, bucket_s)
        got = {(r["sensor_id"], r["quantity"], r["zone"], db.utc(r["bucket"])): dict(r) for r in stored}
        assert set(got) == set(want)
        for key, values in want.items():
            for name, value in values.items():
                if isinstance(value, float):
                    assert math.isclose(got[key][name], value, rel_tol=1e-9, abs_tol=1e-9), (key, name)
                else:
                    assert (
                        db.utc(got[key][name]) == value if name.endswith("_time") else got[key][name] == value
                    )
        # Exactly the raw rows before the cut-off went (PostgreSQL: these old times are all in the
        # default partition, where rows are deleted; named partitions are dropped whole, see below).
        assert after == [row for row in before if db.utc(row["time"]) >= cutoff]

        # A late reading for the rolled-up period: stored in the log, refused as a row, counted.
        refused = PAST_RETENTION._value.get()
        late = reading(cutoff - timedelta(seconds=1), 5.0, "p9", "cold-1", "temperature", [])
        fresh = reading(cutoff, 6.0, "p9", "cold-1", "temperature", [])
        assert await post(engine, site, edge, [late, fresh]) == 2
        assert PAST_RETENTION._value.get() == refused + 1
        async with engine.connect() as conn:
            r = sensors_db.sensor_readings
            kept = await conn.scalars(select(r.c.time).where(r.c.site_id == site_id, r.c.sensor_id == "p9"))
            assert [db.utc(t) for t in kept] == [cutoff]
    finally:
        await engine.dispose()


_SITES: dict[str, Site] = {}


@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(seed=st.integers(0, 2**32 - 1))
def test_rollup_equals_the_raw_aggregate_and_removes_exactly_the_old_rows(db_url: str, seed: int) -> None:
    site = _SITES.setdefault(db_url, Site(db_url))
    asyncio.run(_rollup_example(site, random.Random(seed)))


async def _lots_example(world: World, index: int, rnd: random.Random) -> None:
    await _example(world, rnd)  # a random lot history, read model checked against the oracle
    t0 = LOTS_START + timedelta(seconds=index * 100 * H)  # that example's start (its EXAMPLE_SPAN)
    engine = db.create_engine(world.url)
    try:
        cutoff = t0 + timedelta(hours=rnd.uniform(0, 60))
        result = await roll_up(engine, cutoff, rnd.choice([900, 3600]), max_buckets=100_000)
        async with engine.connect() as conn:
            assert await horizon(conn) == result.horizon
            r = sensors_db.sensor_readings
            left = await conn.scalar(select(func.count()).where(r.c.time < result.horizon))
        assert left == 0  # all in the default partition on PostgreSQL: deleted with their bucket
        await _compare(engine, t0 + timedelta(hours=90))  # the read model still equals the oracle
    finally:
        await engine.dispose()


_LOT_WORLDS: dict[str, tuple[World, itertools.count[int]]] = {}


@pytest.mark.parametrize("examples", [4])
@ACCUMULATING_EXAMPLES
@given(seed=st.integers(0, 2**32 - 1))
def test_lot_evidence_equals_its_recomputation_after_retention(db_url: str, examples: int, seed: int) -> None:
    world, counter = _LOT_WORLDS.setdefault(db_url, (World(db_url), itertools.count()))
    asyncio.run(_lots_example(world, next(counter), random.Random(seed)))


async def test_old_readings_are_served_as_rollups_and_late_ones_refused(cloud: Cloud) -> None:
    # Readings every 10 min from 12:00 (T0) for 3 h, plus an ignored out-of-range one at 12:05.
    events = [(k + 1, conftest_reading(k * 600, 3.0 + k)) for k in range(18)]
    events.append((19, conftest_reading(300, 99.0, flags=("out_of_range",))))
    assert (await cloud.post(conftest_batch("edge-1", events))).status_code == 200
    result = await roll_up(cloud.engine, T0 + timedelta(hours=2), 3600, max_buckets=10)
    assert (result.buckets, result.readings) == (2, 12)
    page = await cloud.get_ok("/api/v1/sensors/probe-1/rollups", quantity="temperature")
    assert [(b["bucket"][11:16], b["count"], b["min_value"], b["max_value"]) for b in page["items"]] == [
        ("12:00", 6, 3.0, 8.0),
        ("13:00", 6, 9.0, 14.0),
    ]
    assert page["items"][0]["mean_value"] == pytest.approx(5.5) and page["items"][0]["zone"] == "cold-1"
    raw = await cloud.get_ok("/api/v1/sensors/probe-1/readings")
    assert [r["value"] for r in raw["items"]] == [15.0, 16.0, 17.0, 18.0, 19.0, 20.0]
    late = await cloud.post(conftest_batch("edge-1", [(20, conftest_reading(3600, 50.0))]))
    assert late.status_code == 200 and late.json()["acked_through"] == 20  # acknowledged, not stored
    assert (await cloud.get_ok("/api/v1/sensors/probe-1/readings"))["total"] == 6
    metrics = (await cloud.client.get("/metrics")).text
    assert "shelfsense_readings_past_retention_total" in metrics
    # The alert raised at 13:00 (9 °C) and still open: its chart's older readings are rolled up.
    alert = (await cloud.get_ok("/api/v1/alerts"))["items"][0]
    detail = await cloud.get_ok(f"/api/v1/alerts/{alert['id']}")
    assert [r["value"] for r in detail["readings"]] == [15.0, 16.0, 17.0, 18.0, 19.0, 20.0]
    rollups = [(b["bucket"][11:16], b["max_value"]) for b in detail["rollups"]]
    assert rollups == [("12:00", 8.0), ("13:00", 14.0)]


def test_retention_settings_are_validated() -> None:
    assert RetentionSettings().readings_days == 90.0
    with pytest.raises(ValidationError, match="divide a day"):
        RetentionSettings(bucket_s=7000)
    with pytest.raises(ValidationError):
        RetentionSettings(readings_days=0)
