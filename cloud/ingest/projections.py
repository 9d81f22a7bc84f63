"""Project newly stored events into the read tables: one statement per table per batch.

History tables (observations, passages, movements, readings, local alarms) get one bulk insert.
"Latest" tables (stock_items, sensors, device_health) get one bulk upsert of the latest row per
key in the batch, guarded by ``WHERE excluded.time >= current.time`` so an older event arriving
late never overwrites a newer state.

Why rows are plain tuples built by :func:`prepare`: ingest runs inside one write transaction,
which on SQLite is THE database write lock. Everything that does not depend on the database
(reading the event attributes, formatting timestamps) is therefore done before the transaction,
in the request's worker thread, and the transaction only binds ready tuples. On SQLite they go
straight to the driver's ``executemany`` (no per-row SQLAlchemy parameter processing, which cost
several times the SQLite work); on PostgreSQL they go through Core as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.ingest import tables as ingest_db
from cloud.retention.rollup import refuse_past_horizon
from cloud.stock import tables as stock_db
from cloud.stock import zone_stock
from shelfsense.contract import (
    DeviceHealth,
    LocalAlarm,
    PortalPassage,
    SensorReading,
    SequencedEvent,
    StockMovement,
    TagObservation,
)

Row = tuple[Any, ...]
Stamp = Callable[[datetime | None], Any]


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """The dialect's INSERT construct (it has ``on_conflict_do_nothing/update``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def stamp_for(dialect: str) -> Stamp:
    """How a datetime is bound: SQLite gets the exact text SQLAlchemy would store, others the value
    in aware UTC (what :class:`cloud.core.db.UtcDateTime` binds anyway).

    Either way the stamps of one dialect order like the instants they stand for (the SQLite text
    is fixed-width naive UTC), so :func:`prepare` compares them to find the latest event per key
    instead of converting every event's time to UTC a second time.
    """
    return db._sqlite_datetime if dialect == "sqlite" else _utc


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else db.utc(value)


@dataclass(frozen=True, slots=True)
class Rows:
    """Ready-to-bind rows of one table (all with the columns ``names``, in that order)."""

    table: Table
    names: tuple[str, ...]
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Rows for a "latest" table: insert, or update the existing row if not newer than this one."""

    rows: Rows
    keys: tuple[str, ...]
    time_column: str


@dataclass(frozen=True, slots=True)
class Projection:
    """Everything a set of new events writes to the read tables."""

    history: list[Rows]
    latest: list[Upsert]


# History tables: the column order of the tuples built below; every row starts with the origin
# (site_id, edge_id, seq).
_ORIGIN = ("site_id", "edge_id", "seq")
_TAG = (*_ORIGIN, "epc", "reader", "antenna", "rssi", "first_seen", "last_seen", "count", "location")
_PASSAGE = (
    *_ORIGIN,
    "epc",
    "portal",
    "direction",
    "at",
    "inside_location",
    "outside_location",
    "unknown_reason",
)
_MOVEMENT = (*_ORIGIN, "epc", "from_location", "to_location", "reason", "at")
_READING = (*_ORIGIN, "sensor_id", "quantity", "value", "unit", "time", "zone", "flags")
_READING_TIME = _READING.index("time")
_ALARM = (*_ORIGIN, "zone", "sensor_id", "rule", "state", "value", "limit", "at")

_STOCK = ("site_id", "epc", "location", "present", "updated_at")
_SENSOR = ("site_id", "sensor_id", "quantity", "edge_id", "zone", "unit", "last_value", "last_time")
_HEALTH = (
    "edge_id",
    "device_id",
    "connected",
    "last_frame_at",
    "frames_ok",
    "frames_bad",
    "reconnects",
    "at",
)


def _memoised(stamp: Stamp) -> Stamp:
    """``stamp`` remembering its answers for one batch: the events of a batch often share a time (an
    edge stamps every reading of one MQTT read, or one read cycle, with the same instant)."""
    seen: dict[datetime, Any] = {}

    def cached(value: datetime | None) -> Any:
        if value is None:
            return None
        try:
            return seen[value]  # equal instants (whatever their tzinfo) have equal stamps
        except KeyError:
            seen[value] = found = stamp(value)
            return found

    return cached


def prepare(site_id: str, edge_id: str, items: Sequence[SequencedEvent], dialect: str) -> Projection:
    """The projection rows of ``items`` (all taken as new), ready to bind for ``dialect``."""
    t = _memoised(stamp_for(dialect))
    tags: list[Row] = []
    passages: list[Row] = []
    movements: list[Row] = []
    readings: list[Row] = []
    alarms: list[Row] = []
    # Latest per key: (stamp, seq, event); the greatest (time, seq) wins, as in the upsert guard.
    stock: dict[str, tuple[Any, int, StockMovement]] = {}
    sensors: dict[tuple[str, str], tuple[Any, int, SensorReading]] = {}
    health: dict[str, tuple[Any, int, DeviceHealth]] = {}
    for item in items:
        ev, seq = item.event, item.seq
        if isinstance(ev, SensorReading):  # first: most of what sites send
            time = t(ev.time)
            readings.append(
                (
                    site_id,
                    edge_id,
                    seq,
                    ev.sensor_id,
                    ev.quantity,
                    ev.value,
                    ev.unit,
                    time,
                    ev.zone,
                    ",".join(dict.fromkeys(ev.flags)),  # a repeated flag once: fits the column
                )
            )
            _keep_latest(sensors, (ev.sensor_id, ev.quantity), time, seq, ev)
        elif isinstance(ev, TagObservation):
            tags.append(
                (
                    site_id,
                    edge_id,
                    seq,
                    ev.epc,
                    ev.reader,
                    ev.antenna,
                    ev.rssi,
                    t(ev.first_seen),
                    t(ev.last_seen),
                    ev.count,
                    ev.location,
                )
            )
        elif isinstance(ev, StockMovement):
            at = t(ev.at)
            movements.append((site_id, edge_id, seq, ev.epc, ev.from_location, ev.to_location, ev.reason, at))
            _keep_latest(stock, ev.epc, at, seq, ev)
        elif isinstance(ev, PortalPassage):
            passages.append(
                (
                    site_id,
                    edge_id,
                    seq,
                    ev.epc,
                    ev.portal,
                    ev.direction,
                    t(ev.at),
                    ev.inside_location,
                    ev.outside_location,
                    # An unknown direction from an older edge (no reason given) is still flagged.
                    (ev.unknown_reason or "one_zone") if ev.direction == "unknown" else None,
                )
            )
        elif isinstance(ev, DeviceHealth):
            _keep_latest(health, ev.device_id, t(ev.at), seq, ev)
        elif isinstance(ev, LocalAlarm):
            alarms.append(
                (
                    site_id,
                    edge_id,
                    seq,
                    ev.zone,
                    ev.sensor_id,
                    ev.rule,
                    ev.state,
                    ev.value,
                    ev.limit,
                    t(ev.at),
                )
            )
    history = [
        Rows(table, names, rows)
        for table, names, rows in (
            (stock_db.tag_observations, _TAG, tags),
            (stock_db.portal_passages, _PASSAGE, passages),
            (stock_db.stock_movements, _MOVEMENT, movements),
            (sensors_db.sensor_readings, _READING, readings),
            (ingest_db.local_alarms, _ALARM, alarms),
        )
        if rows
    ]
    latest: list[Upsert] = []
    # to_location None = the item left the site.
    stock_rows = [
        (site_id, m.epc, m.to_location, m.to_location is not None, at) for at, _, m in stock.values()
    ]
    if stock_rows:
        latest.append(
            Upsert(Rows(stock_db.stock_items, _STOCK, stock_rows), ("site_id", "epc"), "updated_at")
        )
    sensor_rows = [
        (site_id, r.sensor_id, r.quantity, edge_id, r.zone, r.unit, r.value, time)
        for time, _, r in sensors.values()
    ]
    if sensor_rows:
        latest.append(
            Upsert(
                Rows(sensors_db.sensors, _SENSOR, sensor_rows),
                ("site_id", "sensor_id", "quantity"),
                "last_time",
            )
        )
    health_rows = [
        (
            edge_id,
            h.device_id,
            h.connected,
            t(h.last_frame_at),
            h.frames_ok,
            h.frames_bad,
            h.reconnects,
            at,
        )
        for at, _, h in health.values()
    ]
    if health_rows:
        latest.append(
            Upsert(Rows(ingest_db.device_health, _HEALTH, health_rows), ("edge_id", "device_id"), "at")
        )
    return Projection(history, latest)


def _keep_latest(best: dict[Any, tuple[Any, int, Any]], key: Any, stamp: Any, seq: int, ev: Any) -> None:
    """Keep ``ev`` for ``key`` if its ``(stamp, seq)`` is not below the kept one's (stamps of
    :func:`stamp_for` order like their times)."""
    current = best.get(key)
    if current is None or stamp > current[0] or (stamp == current[0] and seq >= current[1]):
        best[key] = (stamp, seq, ev)


async def insert_rows(conn: AsyncConnection, rows: Rows, *, ignore_conflicts: bool = False) -> int:
    """One multi-row insert (SQLite: the driver's ``executemany`` on the prepared tuples); returns
    the rows inserted (fewer than given when ``ignore_conflicts`` skipped some)."""
    if not rows.rows:
        return 0
    table, names = rows.table, rows.names
    if conn.dialect.name == "sqlite":
        result = await conn.exec_driver_sql(db.sqlite_insert_sql(table, names, ignore_conflicts), rows.rows)
        return int(result.rowcount)
    stmt: Any = dialect_insert(conn, table)
    params = [dict(zip(names, row, strict=True)) for row in rows.rows]
    if not ignore_conflicts:
        await conn.execute(stmt, params)
        return len(params)
    # asyncpg reports no row count for an executemany: RETURNING lists the rows actually inserted.
    stmt = stmt.on_conflict_do_nothing().returning(next(iter(table.primary_key.columns)))
    return len((await conn.execute(stmt, params)).all())


async def upsert_rows(conn: AsyncConnection, upsert: Upsert) -> None:
    """Insert, or update rows whose stored time is not newer (``excluded.t >= current.t``)."""
    rows, keys, time_column = upsert.rows, upsert.keys, upsert.time_column
    if not rows.rows:
        return
    table, names = rows.table, rows.names
    if table is stock_db.stock_items:  # per-location product counts follow the moves (cloud.stock.zone_stock)
        await zone_stock.before_stock_upsert(conn, names, rows.rows)
    if conn.dialect.name == "sqlite":
        columns = ", ".join(f'"{n}"' for n in names)
        marks = ", ".join("?" * len(names))
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in keys)
        conflict = ", ".join(f'"{k}"' for k in keys)
        sql = (
            f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks}) ON CONFLICT ({conflict}) '
            f'DO UPDATE SET {updates} WHERE excluded."{time_column}" >= "{table.name}"."{time_column}"'
        )
        await conn.exec_driver_sql(sql, rows.rows)
        return
    stmt = dialect_insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in names if name not in keys},
        where=stmt.excluded[time_column] >= table.c[time_column],
    )
    await conn.execute(stmt, [dict(zip(names, row, strict=True)) for row in rows.rows])


async def write(conn: AsyncConnection, projection: Projection) -> int:
    """Run the statements of a prepared projection (inside the caller's transaction); returns the
    sensor readings left out because one with the same (site, sensor, quantity, device time) is
    stored (a wiped edge or a publisher's re-send under a new sequence number, migration 0016)."""
    dropped = 0
    for rows in projection.history:
        is_reading = rows.table is sensors_db.sensor_readings
        if is_reading:  # none dated before the retention horizon (cloud.retention.rollup)
            rows = Rows(rows.table, rows.names, await refuse_past_horizon(conn, rows.rows, _READING_TIME))
        inserted = await insert_rows(conn, rows, ignore_conflicts=is_reading)
        if is_reading:
            dropped += len(rows.rows) - inserted
    for upsert in projection.latest:
        await upsert_rows(conn, upsert)
    return dropped


async def insert_history(
    conn: AsyncConnection, site_id: str, edge_id: str, items: Sequence[SequencedEvent]
) -> None:
    for rows in prepare(site_id, edge_id, items, conn.dialect.name).history:
        await insert_rows(conn, rows)


async def upsert_latest(
    conn: AsyncConnection, site_id: str, edge_id: str, items: Sequence[SequencedEvent]
) -> None:
    for upsert in prepare(site_id, edge_id, items, conn.dialect.name).latest:
        await upsert_rows(conn, upsert)


_KIND = attrgetter("event.kind")


def rows_by_kind(items: Sequence[SequencedEvent]) -> Mapping[str, int]:
    return Counter(map(_KIND, items))  # counted in C: this runs for every accepted batch


__all__ = [
    "Projection",
    "Rows",
    "Upsert",
    "dialect_insert",
    "insert_history",
    "insert_rows",
    "prepare",
    "rows_by_kind",
    "stamp_for",
    "upsert_latest",
    "upsert_rows",
    "write",
]
