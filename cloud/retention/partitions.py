"""PostgreSQL's native partitions of the two growing tables (revision 0019 creates them).

``sensor_readings`` is range-partitioned by device time, one partition per ISO week (Monday 00:00
UTC); ``stock_movements`` by business time, one per calendar month. Each is named
``<table>_pYYYYMMDD`` after its first day. A ``<table>_default`` partition takes rows outside
every named one (a device clock years off, an import of old data), so ingest never fails on a
date. The retention job creates partitions ``ahead`` periods past the clock (moving any rows the
default partition already holds for that range into the new one) and drops readings partitions
once wholly behind the horizon. The ledger (movements) has no retention: lot histories need an
item's stays back to its arrival; its partitions bound index and vacuum work per month.

Every DDL statement runs with a short ``lock_timeout``: creating or dropping a partition locks the
parent table, and waiting behind a long read would make ingest queue behind the DDL. A step that
times out is retried at the next run (partitions are made weeks ahead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db

log = logging.getLogger(__name__)

Period = Literal["week", "month"]
LOCK_TIMEOUT = "200ms"  # queued DDL blocks the queries behind it: keep the wait short


@dataclass(frozen=True, slots=True)
class Partitioned:
    table: str
    column: str
    period: Period


READINGS = Partitioned("sensor_readings", "time", "week")
MOVEMENTS = Partitioned("stock_movements", "at", "month")
TABLES = (READINGS, MOVEMENTS)


def is_partition(name: str) -> bool:
    """A partition of a partitioned table (schema comparisons skip them: metadata has the parent)."""
    return any(
        name == f"{p.table}_default" or (name.startswith(f"{p.table}_p") and name[-8:].isdigit())
        for p in TABLES
    )


def period_start(moment: datetime, period: Period) -> date:
    day = db.utc(moment).date()
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_start(start: date, period: Period) -> date:
    if period == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def partition_name(p: Partitioned, start: date) -> str:
    return f"{p.table}_p{start:%Y%m%d}"


def _lock_timed_out(exc: DBAPIError) -> bool:
    """PostgreSQL's lock_not_available (55P03): the DDL gave up waiting for its lock."""
    orig = exc.orig
    return (getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)) == "55P03"


def _instant(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def is_partitioned(conn: AsyncConnection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    query = text(
        "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
        "WHERE c.relname = :t AND pg_table_is_visible(c.oid)"
    )
    return await conn.scalar(query, {"t": table}) is not None


async def partition_starts(conn: AsyncConnection, p: Partitioned) -> list[date]:
    """The first days of the table's named partitions, oldest first."""
    query = text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class parent ON parent.oid = i.inhparent "
        "WHERE parent.relname = :t AND pg_table_is_visible(parent.oid)"
    )
    prefix = f"{p.table}_p"
    names = [n for n in await conn.scalars(query, {"t": p.table}) if n.startswith(prefix)]
    return sorted(datetime.strptime(n[len(prefix) :], "%Y%m%d").date() for n in names)


async def _create(conn: AsyncConnection, p: Partitioned, start: date) -> None:
    """Create the partition as a plain table, move the default partition's rows of its range into
    it, then attach it (attaching builds its indexes and checks the default holds no such rows)."""
    name, default = partition_name(p, start), f"{p.table}_default"
    lo, hi = _instant(start), _instant(next_start(start, p.period))
    bounds = {"lo": lo, "hi": hi}
    col = p.column
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{p.table}" INCLUDING DEFAULTS)'))
    moved = f'DELETE FROM "{default}" WHERE "{col}" >= :lo AND "{col}" < :hi RETURNING *'
    await conn.execute(text(f'WITH moved AS ({moved}) INSERT INTO "{name}" SELECT * FROM moved'), bounds)
    # Literal bounds: DDL takes no bind parameters. ISO text of aware UTC instants, nothing else.
    await conn.execute(
        text(
            f'ALTER TABLE "{p.table}" ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
        )
    )


async def ensure_ahead(engine: AsyncEngine, now: datetime, ahead: int) -> list[str]:
    """Create the missing partitions from the current period to ``ahead`` periods past it; returns
    their names. Each in its own short transaction; one that cannot get its lock waits for the next run."""
    created: list[str] = []
    for p in TABLES:
        async with engine.connect() as conn:
            if not await is_partitioned(conn, p.table):
                continue
            existing = set(await partition_starts(conn, p))
        start = period_start(now, p.period)
        for _ in range(ahead + 1):
            if start not in existing:
                try:
                    async with db.write_transaction(engine) as conn:
                        await _create(conn, p, start)
                    created.append(partition_name(p, start))
                except DBAPIError as exc:  # lock_timeout: a long reader holds the table; next run
                    if not _lock_timed_out(exc):
                        raise
                    log.warning(
                        "partition %s not created now: %s", partition_name(p, start), type(exc).__name__
                    )
                    break
            start = next_start(start, p.period)
    return created


async def drop_behind(engine: AsyncEngine, horizon: datetime) -> list[str]:
    """Drop the readings partitions that end at or before ``horizon`` (all rolled up); returns their names."""
    p = READINGS
    async with engine.connect() as conn:
        if not await is_partitioned(conn, p.table):
            return []
        starts = await partition_starts(conn, p)
    dropped: list[str] = []
    for start in starts:
        if _instant(next_start(start, p.period)) > horizon:
            break
        name = partition_name(p, start)
        try:
            async with db.write_transaction(engine) as conn:
                await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                await conn.execute(text(f'ALTER TABLE "{p.table}" DETACH PARTITION "{name}"'))
                await conn.execute(text(f'DROP TABLE "{name}"'))
            dropped.append(name)
        except DBAPIError as exc:  # lock_timeout: retried at the next run
            if not _lock_timed_out(exc):
                raise
            log.warning("partition %s not dropped now: %s", name, type(exc).__name__)
            break
    return dropped


__all__ = [
    "MOVEMENTS",
    "READINGS",
    "TABLES",
    "Partitioned",
    "drop_behind",
    "ensure_ahead",
    "is_partition",
    "is_partitioned",
    "next_start",
    "partition_name",
    "partition_starts",
    "period_start",
]
