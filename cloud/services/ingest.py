"""Store one batch of edge events: de-duplicate, project, evaluate alerts, acknowledge.

Everything happens in ONE transaction, so an error stores nothing and a retry is always safe:

1. lock the edge row (PostgreSQL ``FOR UPDATE``; SQLite takes the write lock at ``BEGIN
   IMMEDIATE``) so two batches of the same edge are applied one after the other;
2. insert all events into ``events`` with ``ON CONFLICT (edge_id, seq) DO NOTHING RETURNING seq``:
   the returned sequence numbers are the new events, everything else is a duplicate;
3. project only the new events (one bulk statement per table) and evaluate alerts;
4. advance ``acked_through`` to the highest sequence ``n`` such that ``1..n`` are all stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, case, exists, func, literal, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.core.config import ZoneKey
from cloud.core.errors import CloudError
from cloud.services.alerts import Alert, AlertBook
from cloud.services.projections import insert_history, rows_by_kind, upsert_latest
from shelfsense.config import ZoneLimits
from shelfsense.contract import Batch, BatchAck, LocalAlarm, SensorReading, SequencedEvent

log = logging.getLogger(__name__)

# Concurrent batches of two edges of one site may race to open the same alert; the partial
# unique index refuses the loser, which simply runs again and sees the winner's alert.
MAX_ATTEMPTS = 3


class UnknownEdge(CloudError):
    """The edge has no row (its token outlived it)."""


class IngestConflict(CloudError):
    """The batch kept conflicting with concurrent writers; the edge should retry later."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    ack: BatchAck
    accepted_by_kind: Mapping[str, int] = field(default_factory=dict)


async def ingest_batch(
    engine: AsyncEngine, batch: Batch, zones: Mapping[ZoneKey, ZoneLimits]
) -> IngestResult:
    """Store ``batch`` (already authenticated for ``batch.edge_id``) atomically."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with db.write_transaction(engine) as conn:
                return await _ingest_in_transaction(conn, batch, zones)
        except IntegrityError:
            log.info("ingest for edge %s conflicted (attempt %d), retrying", batch.edge_id, attempt)
        except DBAPIError as exc:
            if not _is_serialization_failure(exc):
                raise
            log.info("ingest for edge %s hit a serialization failure (attempt %d)", batch.edge_id, attempt)
    raise IngestConflict(f"batch of edge {batch.edge_id} conflicted {MAX_ATTEMPTS} times")


def _is_serialization_failure(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in {"40001", "40P01"}


async def _ingest_in_transaction(
    conn: AsyncConnection, batch: Batch, zones: Mapping[ZoneKey, ZoneLimits]
) -> IngestResult:
    edge_row = (
        await conn.execute(
            select(db.edges.c.site_id, db.edges.c.acked_through)
            .where(db.edges.c.edge_id == batch.edge_id)
            .with_for_update()
        )
    ).one_or_none()
    if edge_row is None:
        raise UnknownEdge(f"edge {batch.edge_id} is not registered")
    site_id, acked = edge_row.site_id, edge_row.acked_through

    new_items = await _insert_new_events(conn, batch)
    if new_items:
        await insert_history(conn, site_id, batch.edge_id, new_items)
        await upsert_latest(conn, site_id, batch.edge_id, new_items)
        await _evaluate_alerts(conn, site_id, zones, new_items)

    acked = await _contiguous_ack(conn, batch.edge_id, acked)
    duplicates = len(batch.events) - len(new_items)
    await conn.execute(
        update(db.edges)
        .where(db.edges.c.edge_id == batch.edge_id)
        .values(
            acked_through=acked,
            events_received=db.edges.c.events_received + len(new_items),
            duplicates=db.edges.c.duplicates + duplicates,
            batches=db.edges.c.batches + 1,
            last_seen=db.utcnow(),
        )
    )
    ack = BatchAck(acked_through=acked, accepted=len(new_items), duplicates=duplicates)
    return IngestResult(ack=ack, accepted_by_kind=rows_by_kind(new_items))


async def _insert_new_events(conn: AsyncConnection, batch: Batch) -> list[SequencedEvent]:
    """Store the events not stored before; returns them.

    The edge row is locked, so no other transaction inserts this edge's events meanwhile: one
    index range scan finds the already stored sequence numbers, and the rest go in with a plain
    executemany (much cheaper than ``INSERT ... RETURNING`` row by row). ``ON CONFLICT DO
    NOTHING`` stays as a belt-and-braces guard.
    """
    if not batch.events:
        return []
    e = db.events
    first, last = batch.events[0].seq, batch.events[-1].seq  # strictly increasing (contract)
    stored = set(
        (
            await conn.execute(
                select(e.c.seq).where(e.c.edge_id == batch.edge_id, e.c.seq >= first, e.c.seq <= last)
            )
        ).scalars()
    )
    new_items = [item for item in batch.events if item.seq not in stored]
    if not new_items:
        return []
    now = db.utcnow()
    rows = [
        {
            "edge_id": batch.edge_id,
            "seq": item.seq,
            "kind": item.event.kind,
            "payload": item.event.model_dump_json(),
            "received_at": now,
        }
        for item in new_items
    ]
    await db.bulk_insert(conn, e, rows, ignore_conflicts=True)
    return new_items


async def _contiguous_ack(conn: AsyncConnection, edge_id: str, acked: int) -> int:
    """Highest ``n >= acked`` with ``1..n`` all stored (``acked`` is already known contiguous).

    The first stored sequence after ``acked`` whose successor is missing ends the run, provided
    ``acked + 1`` itself is stored. The scan walks the primary key from ``acked``; gaps are rare
    (an edge sends in order) so the run is short.
    """
    e, n = db.events.alias("e"), db.events.alias("n")
    next_stored = exists().where(and_(db.events.c.edge_id == edge_id, db.events.c.seq == acked + 1))
    run_end = (
        select(func.min(e.c.seq))
        .where(
            e.c.edge_id == edge_id,
            e.c.seq > acked,
            ~exists().where(and_(n.c.edge_id == edge_id, n.c.seq == e.c.seq + 1)),
        )
        .scalar_subquery()
    )
    value = await conn.scalar(select(case((next_stored, run_end), else_=literal(acked))))
    return int(value) if value is not None else acked


async def _evaluate_alerts(
    conn: AsyncConnection, site_id: str, zones: Mapping[ZoneKey, ZoneLimits], items: Sequence[SequencedEvent]
) -> None:
    relevant = [i for i in items if isinstance(i.event, SensorReading | LocalAlarm)]
    if not relevant:
        return
    rows = (
        await conn.execute(
            select(db.alerts)
            .where(db.alerts.c.site_id == site_id, db.alerts.c.status == "open")
            .with_for_update()
        )
    ).mappings()
    book = AlertBook(site_id, zones, [Alert.from_row(row) for row in rows])

    def when(item: SequencedEvent) -> tuple[datetime, int]:
        ev = item.event
        at = ev.time if isinstance(ev, SensorReading) else ev.at if isinstance(ev, LocalAlarm) else None
        assert at is not None
        return db.utc(at), item.seq

    for item in sorted(relevant, key=when):
        if isinstance(item.event, SensorReading):
            book.on_reading(item.event)
        elif isinstance(item.event, LocalAlarm):
            book.on_local_alarm(item.event)
    await _persist_alerts(conn, *book.changed())


async def _persist_alerts(conn: AsyncConnection, new: list[Alert], updated: list[Alert]) -> None:
    if updated:
        # Resolve/refresh existing rows first so a re-opened alert does not collide with the
        # still-open old row on the partial unique index. Bind names are prefixed: SQLAlchemy
        # reserves the bare column names for the SET clause.
        columns = [name for name in updated[0].to_row() if name != "id"]
        params = [{"b_" + k: v for k, v in a.to_row().items()} for a in updated]
        stmt = (
            update(db.alerts)
            .where(db.alerts.c.id == bindparam("b_id"))
            .values({name: bindparam("b_" + name) for name in columns})
        )
        await conn.execute(stmt, params)
    if new:
        rows = [a.to_row() for a in new]
        for row in rows:
            del row["id"]
        await conn.execute(db.alerts.insert(), rows)


__all__ = ["IngestConflict", "IngestResult", "UnknownEdge", "ingest_batch"]
