"""Rolling raw sensor readings up into buckets, one bucket per short transaction.

The *horizon* (``retention_state``) only moves forward, and always to a bucket boundary: every
reading before it has been folded into ``sensor_reading_rollups`` and its raw row removed (SQLite:
deleted with its bucket; PostgreSQL: its weekly partition is dropped once wholly behind the
horizon, see :mod:`.partitions`). Each step takes the oldest bucket still holding raw readings
before the cut-off, aggregates it, removes it where rows are deleted and moves the horizon past
it, all in one transaction, so a crash between steps loses nothing and folds nothing twice.

Ingest refuses readings dated before the horizon (:func:`refuse_past_horizon`): their bucket is
final, and folding a late reading in could not tell a re-sent one (same sensor, quantity and
device time, another sequence number) from a new one. They stay in the events log (audit) and
reach InfluxDB, and are counted (``shelfsense_readings_past_retention_total``). On PostgreSQL a
step holds an exclusive advisory lock that ingest takes shared while it checks the horizon and
inserts, so no reading can slip into a bucket being folded; on SQLite writers are serialised.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter as PromCounter
from sqlalchemy import Select, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.core.metrics import REGISTRY
from cloud.lots.marks import DUE_AT_ONCE, insert_marks
from cloud.retention.tables import retention_state, sensor_reading_rollups

READINGS = "sensor_readings"  # the retention_state row of the readings
# PostgreSQL: rows outside every named partition (clock-skewed devices, old imports) land here.
READINGS_DEFAULT_PARTITION = "sensor_readings_default"
# Arbitrary but fixed 64-bit key of the advisory lock between a roll-up step and ingest ("SHSE" "RETN").
ROLLUP_LOCK_KEY = 0x5348_5345_5245_544E
# Flags whose readings every reader leaves out (cloud.alerts.rules.IGNORED_FLAGS): so does the roll-up.
_IGNORED = "out_of_range"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Retention keeps at least a day (RetentionSettings.readings_days >= 1), so no roll-up reaches a
# reading younger than this (an hour's margin for clocks differing between replicas).
ALWAYS_KEPT = timedelta(hours=23)

PAST_RETENTION = PromCounter(
    "shelfsense_readings_past_retention_total",
    "Readings refused by ingest: dated before the retention horizon (their bucket is rolled up).",
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class RollupResult:
    buckets: int  # buckets folded by this run
    readings: int  # raw readings folded (those the rules ignore are removed, not counted)
    horizon: datetime | None


def bucket_floor(moment: datetime, bucket_s: int) -> datetime:
    """The start of the bucket holding ``moment`` (buckets are aligned to the Unix epoch)."""
    seconds = int((db.utc(moment) - _EPOCH).total_seconds() // bucket_s) * bucket_s
    return _EPOCH + timedelta(seconds=seconds)


async def horizon(conn: AsyncConnection, name: str = READINGS) -> datetime | None:
    """Readings before this exist only rolled up (None: nothing rolled up yet)."""
    value = await conn.scalar(select(retention_state.c.horizon).where(retention_state.c.name == name))
    return db.utc(value) if value is not None else None


async def _set_horizon(conn: AsyncConnection, value: datetime) -> None:
    s = retention_state
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(s).values(name=READINGS, horizon=value, updated_at=db.utcnow())
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"horizon": stmt.excluded.horizon, "updated_at": stmt.excluded.updated_at},
        )
    )


async def _lock(conn: AsyncConnection, *, shared: bool) -> None:
    if conn.dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await conn.execute(text(f"SELECT {function}(:key)"), {"key": ROLLUP_LOCK_KEY})


def _kept(r: Any) -> Any:
    """Readings the rules use: not flagged ``out_of_range`` (flags are comma-separated)."""
    return ("," + r.c.flags + ",").not_like(f"%,{_IGNORED},%")


def _aggregate(start: datetime, end: datetime) -> Select[Any]:
    r = sensors_db.sensor_readings
    zone = func.coalesce(r.c.zone, "")
    return (
        select(
            r.c.site_id,
            r.c.sensor_id,
            r.c.quantity,
            zone,
            literal(start, db.UtcDateTime),
            func.min(r.c.unit),
            func.count(),
            func.min(r.c.value),
            func.max(r.c.value),
            func.avg(r.c.value),
            func.min(r.c.time),
            func.max(r.c.time),
        )
        .where(r.c.time >= start, r.c.time < end, _kept(r))
        .group_by(r.c.site_id, r.c.sensor_id, r.c.quantity, zone)
    )


async def _remove_raw(conn: AsyncConnection, start: datetime, end: datetime) -> None:
    """SQLite: delete the bucket's rows. PostgreSQL: only those in the default partition; the
    named partitions are dropped whole (:mod:`.partitions`)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text(f'DELETE FROM "{READINGS_DEFAULT_PARTITION}" WHERE time >= :a AND time < :b'),
            {"a": start, "b": end},
        )
        return
    r = sensors_db.sensor_readings
    await conn.execute(r.delete().where(r.c.time >= start, r.c.time < end))


@dataclass(frozen=True, slots=True)
class Step:
    start: datetime
    readings: int
    zones: set[tuple[str, str]]  # (site, zone) with temperature readings folded


async def roll_step(engine: AsyncEngine, cutoff: datetime, bucket_s: int) -> Step | None:
    """Fold the oldest bucket before ``cutoff`` that still has raw readings past the horizon, in one
    transaction; None once there is none left (the horizon is then moved to ``cutoff``)."""
    r, roll = sensors_db.sensor_readings, sensor_reading_rollups
    async with db.write_transaction(engine) as conn:
        await _lock(conn, shared=False)
        current = await horizon(conn)
        query = select(func.min(r.c.time)).where(r.c.time < cutoff)
        if current is not None:
            query = query.where(r.c.time >= current)
        first = await conn.scalar(query)
        if first is None:
            if current is None or current < cutoff:
                await _set_horizon(conn, cutoff)
            return None
        # Not before the horizon: a bucket_s changed between runs may start mid-bucket.
        start = max(bucket_floor(first, bucket_s), current or _EPOCH)
        end = bucket_floor(start, bucket_s) + timedelta(seconds=bucket_s)
        names = [
            "site_id",
            "sensor_id",
            "quantity",
            "zone",
            "bucket",
            "unit",
            "count",
            "min_value",
            "max_value",
            "mean_value",
            "first_time",
            "last_time",
        ]
        await conn.execute(roll.insert().from_select(names, _aggregate(start, end)))
        folded = await conn.execute(
            select(roll.c.site_id, roll.c.zone, roll.c.quantity, roll.c.count).where(roll.c.bucket == start)
        )
        count, zones = 0, set()
        for site_id, zone, quantity, n in folded:
            count += int(n)
            if zone and quantity == "temperature":
                zones.add((site_id, zone))
        await _remove_raw(conn, start, end)
        await _set_horizon(conn, end)
    return Step(start, count, zones)


async def _mark_zones(engine: AsyncEngine, since: dict[tuple[str, str], datetime], until: datetime) -> None:
    """Lots that stayed in a rolled-up zone get recomputed by the lot read model (their evidence
    now comes from the roll-up: the read model must keep equalling a recomputation). One mark per
    zone per run, not per bucket: each mark costs the read model a scan of the site's movements
    since its time. A crash before this leaves those lots on their raw-based evidence (the more
    exact one) until their next recompute."""
    rows = [
        {"sku": None, "lot_code": None, "epc": None, "site_id": site, "zone": zone, "since": lo}
        | {"until": until, "due_at": DUE_AT_ONCE}
        for (site, zone), lo in sorted(since.items())
    ]
    if rows:
        async with db.write_transaction(engine) as conn:
            await insert_marks(conn, rows)


async def roll_up(engine: AsyncEngine, cutoff: datetime, bucket_s: int, max_buckets: int) -> RollupResult:
    """Fold every bucket before ``cutoff`` (at most ``max_buckets`` this run; the next run goes on)."""
    cutoff = bucket_floor(cutoff, bucket_s)
    buckets = readings = 0
    zones: dict[tuple[str, str], datetime] = {}
    last = cutoff
    while buckets < max_buckets:
        started = time.perf_counter()
        step = await roll_step(engine, cutoff, bucket_s)
        if step is None:
            break
        # At most half the time: a long catch-up (a first run over months of history) leaves
        # ingest the database (and this process) every other moment. Steady state is a few buckets.
        await asyncio.sleep(time.perf_counter() - started)
        buckets += 1
        readings += step.readings
        last = step.start
        for key in step.zones:
            zones.setdefault(key, step.start)
    await _mark_zones(engine, zones, last)
    async with engine.connect() as conn:
        return RollupResult(buckets, readings, await horizon(conn))


def _stored_time(value: Any, dialect: str) -> Any:
    """``horizon`` as ingest's prepared rows hold times (SQLite: the stored text)."""
    if dialect != "sqlite":
        return value
    return db.utc(value).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


async def refuse_past_horizon(
    conn: AsyncConnection, rows: list[tuple[Any, ...]], time_index: int
) -> list[tuple[Any, ...]]:
    """Ingest's readings (prepared rows, inside its transaction) without those dated before the
    horizon, which are counted. On PostgreSQL this takes the roll-up lock shared until commit,
    unless every reading is recent: the usual batch costs nothing."""
    if not rows:
        return rows
    if min(row[time_index] for row in rows) >= _stored_time(db.utcnow() - ALWAYS_KEPT, conn.dialect.name):
        return rows
    await _lock(conn, shared=True)
    current = await horizon(conn)
    if current is None:
        return rows
    limit = _stored_time(current, conn.dialect.name)
    kept = [row for row in rows if row[time_index] >= limit]
    if len(kept) != len(rows):
        PAST_RETENTION.inc(len(rows) - len(kept))
    return kept


__all__ = [
    "PAST_RETENTION",
    "READINGS",
    "READINGS_DEFAULT_PARTITION",
    "ROLLUP_LOCK_KEY",
    "RollupResult",
    "Step",
    "bucket_floor",
    "horizon",
    "refuse_past_horizon",
    "roll_step",
    "roll_up",
]
