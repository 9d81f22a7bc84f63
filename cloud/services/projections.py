"""Project newly stored events into the read tables: one statement per table per batch.

History tables (observations, passages, movements, readings, local alarms) get one bulk insert.
"Latest" tables (stock_items, sensors, device_health) get one bulk upsert of the latest row per
key in the batch, guarded by ``WHERE excluded.time >= current.time`` so an older event arriving
late never overwrites a newer state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.core import db
from shelfsense.contract import (
    DeviceHealth,
    LocalAlarm,
    PortalPassage,
    SensorReading,
    SequencedEvent,
    StockMovement,
    TagObservation,
)


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """The dialect's INSERT construct (it has ``on_conflict_do_nothing/update``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _origin(site_id: str, edge_id: str, item: SequencedEvent) -> dict[str, Any]:
    return {"site_id": site_id, "edge_id": edge_id, "seq": item.seq}


def _row(site_id: str, edge_id: str, item: SequencedEvent) -> tuple[Table, dict[str, Any]] | None:
    """The history-table row of one event (None for kinds with no history table)."""
    ev = item.event
    base = _origin(site_id, edge_id, item)
    if isinstance(ev, TagObservation):
        fields = ev.model_dump(
            include={"epc", "reader", "antenna", "rssi", "first_seen", "last_seen", "count"}
        )
        return db.tag_observations, {**base, **fields, "location": ev.location}
    if isinstance(ev, PortalPassage):
        fields = ev.model_dump(exclude={"kind"})
        return db.portal_passages, {**base, **fields}
    if isinstance(ev, StockMovement):
        return db.stock_movements, {**base, **ev.model_dump(exclude={"kind"})}
    if isinstance(ev, SensorReading):
        fields = ev.model_dump(exclude={"kind", "flags"})
        return db.sensor_readings, {**base, **fields, "flags": ",".join(ev.flags)}
    if isinstance(ev, LocalAlarm):
        return db.local_alarms, {**base, **ev.model_dump(exclude={"kind"})}
    return None


async def insert_history(
    conn: AsyncConnection, site_id: str, edge_id: str, items: Sequence[SequencedEvent]
) -> None:
    by_table: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
    for item in items:
        found = _row(site_id, edge_id, item)
        if found is not None:
            table, row = found
            by_table.setdefault(table.name, (table, []))[1].append(row)
    for table, rows in by_table.values():
        await db.bulk_insert(conn, table, rows)


def _latest(items: Sequence[SequencedEvent], kind: type, key: Any, time: Any) -> list[Any]:
    """Per key, the event with the greatest (time, seq)."""
    best: dict[Any, tuple[Any, int, Any]] = {}
    for item in items:
        ev = item.event
        if not isinstance(ev, kind):
            continue
        k, t = key(ev), db.utc(time(ev))
        current = best.get(k)
        if current is None or (t, item.seq) >= (current[0], current[1]):
            best[k] = (t, item.seq, ev)
    return [entry[2] for entry in best.values()]


async def _upsert_latest(
    conn: AsyncConnection, table: Table, keys: list[str], time_column: str, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    stmt = dialect_insert(conn, table)
    updates = {name: stmt.excluded[name] for name in rows[0] if name not in keys}
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_=updates,
        where=stmt.excluded[time_column] >= table.c[time_column],
    )
    await conn.execute(stmt, rows)


async def upsert_latest(
    conn: AsyncConnection, site_id: str, edge_id: str, items: Sequence[SequencedEvent]
) -> None:
    moves: list[StockMovement] = _latest(items, StockMovement, lambda e: e.epc, lambda e: e.at)
    stock_rows = [
        {
            "site_id": site_id,
            "epc": m.epc,
            "location": m.to_location,
            "present": m.to_location is not None,  # None = left the site
            "updated_at": m.at,
        }
        for m in moves
    ]
    await _upsert_latest(conn, db.stock_items, ["site_id", "epc"], "updated_at", stock_rows)

    readings: list[SensorReading] = _latest(
        items, SensorReading, lambda e: (e.sensor_id, e.quantity), lambda e: e.time
    )
    sensor_rows = [
        {
            "site_id": site_id,
            "sensor_id": r.sensor_id,
            "quantity": r.quantity,
            "edge_id": edge_id,
            "zone": r.zone,
            "unit": r.unit,
            "last_value": r.value,
            "last_time": r.time,
        }
        for r in readings
    ]
    await _upsert_latest(conn, db.sensors, ["site_id", "sensor_id", "quantity"], "last_time", sensor_rows)

    health: list[DeviceHealth] = _latest(items, DeviceHealth, lambda e: e.device_id, lambda e: e.at)
    health_rows = [{"edge_id": edge_id, **h.model_dump(exclude={"kind"})} for h in health]
    await _upsert_latest(conn, db.device_health, ["edge_id", "device_id"], "at", health_rows)


def rows_by_kind(items: Sequence[SequencedEvent]) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.event.kind] = counts.get(item.event.kind, 0) + 1
    return counts


__all__ = ["dialect_insert", "insert_history", "rows_by_kind", "upsert_latest"]
