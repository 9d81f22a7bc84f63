"""Store one batch of edge events: de-duplicate, project, evaluate alerts, acknowledge.

Everything happens in ONE transaction, so an error stores nothing and a retry is always safe:

1. lock the edge row (PostgreSQL ``FOR UPDATE``; SQLite takes the write lock at ``BEGIN
   IMMEDIATE``) so two batches of the same edge are applied one after the other;
2. find which of the batch's sequence numbers are already stored (one index range scan) and
   insert the others into ``events``: those are the new events, everything else is a duplicate;
3. project only the new events (one bulk statement per table) and evaluate alerts;
4. advance ``acked_through`` to the highest sequence ``n`` such that ``1..n`` are all stored.

The rows themselves (event JSON, projection tuples, timestamps formatted for the engine) are built
by :func:`prepare_batch` BEFORE the transaction - the route does it in a worker thread right after
parsing - because on SQLite the transaction is the database's single write lock: whatever Python
work happens inside it is time every other edge waits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    and_,
    bindparam,
    case,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.core.config import ZoneKey
from cloud.core.errors import CloudError
from cloud.services.alerts import ColdChainRules, Limits
from cloud.services.coldchain import Evaluation, Notice, evaluate_batch
from cloud.services.lot_marks import mark_events
from cloud.services.projections import Projection, Rows, insert_rows, prepare, rows_by_kind, stamp_for, write
from shelfsense.config import ZoneLimits
from shelfsense.contract import Batch, BatchAck, SequencedEvent, event_json

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
    # For work after the commit (notifications, InfluxDB): the site, the new events, and the
    # alert transitions the batch caused (cloud.services.coldchain).
    site_id: str = ""
    new_events: Sequence[SequencedEvent] = ()
    notices: Sequence[Notice] = ()
    zone_limits: Mapping[str, Limits] = field(default_factory=dict)  # limits the batch was judged by
    duplicate_readings: int = 0  # new events whose reading (site, sensor, quantity, time) was stored


_EVENT_COLUMNS = ("edge_id", "seq", "kind", "payload", "received_at")


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """The rows a batch writes if all its events are new, built outside the write transaction.

    ``site_id`` is the site the caller authenticated the edge for; the transaction re-reads it
    from the locked edge row and rebuilds the projection if it differs (it cannot, in practice:
    an edge never changes site).
    """

    site_id: str
    dialect: str
    events: Rows  # aligned with batch.events
    projection: Projection


def prepare_batch(batch: Batch, site_id: str, dialect: str) -> PreparedBatch:
    """Build every row of ``batch`` for ``dialect`` (pure CPU; safe to run in a worker thread)."""
    t = stamp_for(dialect)
    now = t(db.utcnow())
    edge_id = batch.edge_id
    event_rows = [(edge_id, item.seq, item.event.kind, event_json(item.event), now) for item in batch.events]
    return PreparedBatch(
        site_id,
        dialect,
        Rows(db.events, _EVENT_COLUMNS, event_rows),
        prepare(site_id, edge_id, batch.events, dialect),
    )


async def ingest_batch(
    engine: AsyncEngine,
    batch: Batch,
    zones: Mapping[ZoneKey, ZoneLimits],
    prepared: PreparedBatch | None = None,
    rules: ColdChainRules | None = None,
) -> IngestResult:
    """Store ``batch`` (already authenticated for ``batch.edge_id``) atomically.

    ``prepared`` (from :func:`prepare_batch`) saves building the rows under the write lock.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with db.write_transaction(engine) as conn:
                return await _ingest_in_transaction(conn, batch, zones, prepared, rules)
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
    conn: AsyncConnection,
    batch: Batch,
    zones: Mapping[ZoneKey, ZoneLimits],
    prepared: PreparedBatch | None = None,
    rules: ColdChainRules | None = None,
) -> IngestResult:
    edge_row = (await conn.execute(_LOCK_EDGE, {"edge_id": batch.edge_id})).one_or_none()
    if edge_row is None:
        raise UnknownEdge(f"edge {batch.edge_id} is not registered")
    site_id, acked = edge_row.site_id, edge_row.acked_through
    dialect = conn.dialect.name
    if prepared is None or prepared.site_id != site_id or prepared.dialect != dialect:
        prepared = prepare_batch(batch, site_id, dialect)

    new_items = await _insert_new_events(conn, batch, prepared)
    evaluation = Evaluation()
    dropped = 0
    if new_items:
        projection = prepared.projection
        if len(new_items) != len(batch.events):  # a resend: project only what is new
            projection = prepare(site_id, batch.edge_id, new_items, dialect)
        dropped = await write(conn, projection)
        await mark_events(conn, site_id, new_items)  # for the lot read model's catch-up
        evaluation = await evaluate_batch(conn, site_id, zones, rules or ColdChainRules(), new_items)

    duplicates = len(batch.events) - len(new_items)
    params = {
        "b_edge_id": batch.edge_id,
        "b_acked": _known_contiguous(batch, acked),
        "b_accepted": len(new_items),
        "b_duplicates": duplicates,
        "b_now": db.utcnow(),
    }
    acked = int(await conn.scalar(_ADVANCE_EDGE, params))
    ack = BatchAck(acked_through=acked, accepted=len(new_items), duplicates=duplicates)
    kinds = rows_by_kind(new_items)
    return IngestResult(ack, kinds, site_id, new_items, evaluation.notices, evaluation.limits, dropped)


async def _insert_new_events(
    conn: AsyncConnection, batch: Batch, prepared: PreparedBatch
) -> list[SequencedEvent]:
    """Store the events not stored before; returns them.

    The edge row is locked, so no other transaction inserts this edge's events meanwhile: one
    index range scan finds the already stored sequence numbers, and the rest go in with a plain
    executemany (much cheaper than ``INSERT ... RETURNING`` row by row). ``ON CONFLICT DO
    NOTHING`` stays as a belt-and-braces guard.
    """
    if not batch.events:
        return []
    first, last = batch.events[0].seq, batch.events[-1].seq  # strictly increasing (contract)
    params = {"edge_id": batch.edge_id, "first": first, "last": last}
    stored = set((await conn.execute(_STORED_SEQS, params)).scalars())
    if not stored:
        await insert_rows(conn, prepared.events, ignore_conflicts=True)
        return list(batch.events)
    keep = [item.seq not in stored for item in batch.events]
    new_items = [item for item, k in zip(batch.events, keep, strict=True) if k]
    if new_items:
        rows = [row for row, k in zip(prepared.events.rows, keep, strict=True) if k]
        await insert_rows(conn, Rows(db.events, prepared.events.names, rows), ignore_conflicts=True)
    return new_items


def _known_contiguous(batch: Batch, acked: int) -> int:
    """A sequence through which everything is stored once ``batch`` is (``acked`` or more).

    A contiguous batch starting at or before ``acked + 1`` extends the run to its last sequence,
    so the ack query starts there instead of walking the whole batch again.
    """
    if not batch.events:
        return acked
    first, last = batch.events[0].seq, batch.events[-1].seq
    if first <= acked + 1 and last - first + 1 == len(batch.events):
        return max(acked, last)
    return acked


# The statements of every ingest, built once: constructing them (aliases, comparisons) and
# computing their cache keys cost more Python than executing them; the cache key of a statement
# object is memoised, so with bound parameters only the values change per batch.

_LOCK_EDGE = (
    select(db.edges.c.site_id, db.edges.c.acked_through)
    .where(db.edges.c.edge_id == bindparam("edge_id"))
    .with_for_update()
)
_STORED_SEQS = select(db.events.c.seq).where(
    db.events.c.edge_id == bindparam("edge_id"),
    db.events.c.seq >= bindparam("first"),
    db.events.c.seq <= bindparam("last"),
)


def _contiguous_ack(edge_id: BindParameter[str], acked: BindParameter[int]) -> ColumnElement[int]:
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
    return case((next_stored, func.coalesce(run_end, acked)), else_=acked)


def _advance_edge() -> Any:  # a ReturningUpdate
    """Store the new contiguous ack and the counters; RETURNING the ack (one round trip, not two).

    Bind names are prefixed: SQLAlchemy reserves the bare column names for the SET clause.
    """
    edge_id: BindParameter[str] = bindparam("b_edge_id", type_=db.edges.c.edge_id.type)
    acked: BindParameter[int] = bindparam("b_acked", type_=BigInteger())
    c = db.edges.c
    return (
        update(db.edges)
        .where(c.edge_id == edge_id)
        .values(
            acked_through=_contiguous_ack(edge_id, acked),
            events_received=c.events_received + bindparam("b_accepted", type_=BigInteger()),
            duplicates=c.duplicates + bindparam("b_duplicates", type_=BigInteger()),
            batches=c.batches + 1,
            last_seen=bindparam("b_now", type_=c.last_seen.type),
        )
        .returning(c.acked_through)
    )


_ADVANCE_EDGE = _advance_edge()


__all__ = ["IngestConflict", "IngestResult", "UnknownEdge", "ingest_batch"]
