"""Store one batch of edge events: de-duplicate, project, evaluate alerts, acknowledge.

Everything happens in ONE transaction, so an error stores nothing and a retry is always safe:

1. lock the edge row (PostgreSQL ``FOR UPDATE``; SQLite takes the write lock at ``BEGIN
   IMMEDIATE``) so two batches of the same edge are applied one after the other;
2. find which of the batch's sequence numbers are already stored (one index range scan) and
   insert the others into ``events``: those are the new events, everything else is a duplicate;
3. project only the new events (one bulk statement per table) and evaluate alerts; new events
   dated outside the plausibility window (cloud.ingest.plausibility) are stored, flagged and
   counted, but not projected;
4. advance ``acked_through`` to the highest sequence ``n`` such that ``1..n`` are all stored.

Sequence numbers count within the edge database's incarnation: :mod:`cloud.ingest.edge_streams`
places each incarnation's stream in ``events.seq`` (after an offset) and refuses (409) batches that
do not fit it, including a resent sequence number whose content differs from what is stored.

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

from cloud.alerts.rules import ColdChainRules, Limits
from cloud.coldchain.service import Evaluation, Notice, evaluate_batch
from cloud.core import db
from cloud.core.config import ZoneKey
from cloud.core.errors import CloudError
from cloud.ingest import tables as ingest_db
from cloud.ingest.edge_streams import StreamConflict, check_resent, note_disk_full, shifted, stream_of
from cloud.ingest.plausibility import PlausibilityWindow
from cloud.ingest.projections import Projection, Rows, insert_rows, prepare, rows_by_kind, stamp_for, write
from cloud.lots.marks import mark_events
from shelfsense.config import ZoneLimits
from shelfsense.contract import Batch, BatchAck, SequencedEvent, event_json

log = logging.getLogger(__name__)

# Concurrent batches of two edges of one site may race to open the same alert; the partial
# unique index refuses the loser, which simply runs again and sees the winner's alert.
MAX_ATTEMPTS = 3


class UnknownEdge(CloudError):
    """The edge has no row (its token outlived it)."""

    status_code = 401
    code = "unauthenticated"


class IngestConflict(CloudError):
    """The batch kept conflicting with concurrent writers; the edge should retry later."""

    status_code = 503
    code = "conflict"
    headers = {"Retry-After": "1"}


@dataclass(frozen=True, slots=True)
class IngestResult:
    ack: BatchAck
    accepted_by_kind: Mapping[str, int] = field(default_factory=dict)
    # For work after the commit (notifications, InfluxDB): the site, the new events, and the
    # alert transitions the batch caused (cloud.coldchain.service).
    site_id: str = ""
    new_events: Sequence[SequencedEvent] = ()
    notices: Sequence[Notice] = ()
    zone_limits: Mapping[str, Limits] = field(default_factory=dict)  # limits the batch was judged by
    duplicate_readings: int = 0  # new events whose reading (site, sensor, quantity, time) was stored


_EVENT_COLUMNS = ("edge_id", "seq", "kind", "payload", "received_at", "implausible")


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
    projection: Projection  # of the plausible events only
    offset: int = 0  # the stream offset the rows were numbered with (edge_streams)
    implausible: frozenset[int] = frozenset()  # seqs (events.seq terms) dated outside the plausibility window


# The stream offset last seen per edge: it changes only when an edge's database is replaced, so the
# route can number the rows outside the write lock; the transaction checks it (rebuilds if stale).
_OFFSETS: dict[str, int] = {}


def offset_hint(edge_id: str) -> int:
    return _OFFSETS.get(edge_id, 0)


def prepare_batch(
    batch: Batch, site_id: str, dialect: str, offset: int = 0, window: PlausibilityWindow | None = None
) -> PreparedBatch:
    """Build every row of ``batch`` for ``dialect`` (pure CPU; safe to run in a worker thread),
    numbered in ``events.seq`` terms: the edge's sequence plus the stream's ``offset``.

    ``window``: judge event times against it (on this moment's clock); None believes every time.
    """
    batch = shifted(batch, offset)
    received = db.utcnow()
    now = stamp_for(dialect)(received)
    edge_id = batch.edge_id
    implausible = window.implausible_seqs(batch.events, received) if window else frozenset()
    event_rows = [
        (edge_id, item.seq, item.event.kind, event_json(item.event), now, item.seq in implausible)
        for item in batch.events
    ]
    applied = [item for item in batch.events if item.seq not in implausible] if implausible else batch.events
    return PreparedBatch(
        site_id,
        dialect,
        Rows(ingest_db.events, _EVENT_COLUMNS, event_rows),
        prepare(site_id, edge_id, applied, dialect),
        offset,
        implausible,
    )


async def ingest_batch(
    engine: AsyncEngine,
    batch: Batch,
    zones: Mapping[ZoneKey, ZoneLimits],
    prepared: PreparedBatch | None = None,
    rules: ColdChainRules | None = None,
    window: PlausibilityWindow | None = None,
) -> IngestResult:
    """Store ``batch`` (already authenticated for ``batch.edge_id``) atomically.

    ``prepared`` (from :func:`prepare_batch`, given the same ``window``) saves building the rows
    under the write lock.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with db.write_transaction(engine) as conn:
                return await _ingest_in_transaction(conn, batch, zones, prepared, rules, window)
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
    window: PlausibilityWindow | None = None,
) -> IngestResult:
    edge_row = (await conn.execute(_LOCK_EDGE, {"edge_id": batch.edge_id})).one_or_none()
    if edge_row is None:
        raise UnknownEdge(f"edge {batch.edge_id} is not registered")
    site_id = edge_row.site_id
    stream = await stream_of(conn, batch, edge_row, site_id)
    await note_disk_full(conn, batch, edge_row)
    _OFFSETS[batch.edge_id] = stream.offset
    sent = batch  # the edge's numbering (for error messages); ``batch`` from here on: events.seq
    batch = shifted(batch, stream.offset)
    acked = stream.offset + stream.acked
    dialect = conn.dialect.name
    if prepared is None or (prepared.site_id, prepared.dialect, prepared.offset) != (
        site_id,
        dialect,
        stream.offset,
    ):
        prepared = prepare_batch(sent, site_id, dialect, stream.offset, window)

    new_items = await _insert_new_events(conn, batch, prepared, sent, stream.offset)
    applied = [item for item in new_items if item.seq not in prepared.implausible]
    evaluation = Evaluation()
    dropped = 0
    if applied:
        projection = prepared.projection
        if len(new_items) != len(batch.events):  # a resend: project only what is new
            projection = prepare(site_id, batch.edge_id, applied, dialect)
        dropped = await write(conn, projection)
        await mark_events(conn, site_id, applied)  # for the lot read model's catch-up
        evaluation = await evaluate_batch(conn, site_id, zones, rules or ColdChainRules(), applied)

    duplicates = len(batch.events) - len(new_items)
    params = {
        "b_edge_id": batch.edge_id,
        "b_acked": _known_contiguous(batch, acked),
        "b_offset": stream.offset,
        "b_accepted": len(new_items),
        "b_duplicates": duplicates,
        "b_implausible": len(new_items) - len(applied),
        "b_now": db.utcnow(),
    }
    acked = int(await conn.scalar(_ADVANCE_EDGE, params))
    ack = BatchAck(acked_through=acked, accepted=len(new_items), duplicates=duplicates)
    kinds = rows_by_kind(new_items)
    notices = [stream.notice, *evaluation.notices] if stream.notice else evaluation.notices
    return IngestResult(ack, kinds, site_id, applied, notices, evaluation.limits, dropped)


async def _insert_new_events(
    conn: AsyncConnection, batch: Batch, prepared: PreparedBatch, sent: Batch, offset: int
) -> list[SequencedEvent]:
    """Store the events not stored before; returns them. A stored one resent with other content
    refuses the whole batch (:class:`StreamConflict`).

    The edge row is locked, so no other transaction inserts this edge's events meanwhile: one
    index range scan finds the already stored sequence numbers, and the rest go in with a plain
    executemany (much cheaper than ``INSERT ... RETURNING`` row by row). ``ON CONFLICT DO
    NOTHING`` stays as a belt-and-braces guard.
    """
    if not batch.events:
        return []
    first, last = batch.events[0].seq, batch.events[-1].seq  # strictly increasing (contract)
    params = {"edge_id": batch.edge_id, "first": first, "last": last}
    stored = {int(seq): str(payload) for seq, payload in await conn.execute(_STORED_SEQS, params)}
    if not stored:
        await insert_rows(conn, prepared.events, ignore_conflicts=True)
        return list(batch.events)
    payloads = [row[3] for row in prepared.events.rows]  # _EVENT_COLUMNS: payload is the 4th
    check_resent(sent, offset, stored, batch.events, payloads)
    keep = [item.seq not in stored for item in batch.events]
    new_items = [item for item, k in zip(batch.events, keep, strict=True) if k]
    if new_items:
        rows = [row for row, k in zip(prepared.events.rows, keep, strict=True) if k]
        await insert_rows(conn, Rows(ingest_db.events, prepared.events.names, rows), ignore_conflicts=True)
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
    select(
        ingest_db.edges.c.site_id,
        ingest_db.edges.c.acked_through,
        ingest_db.edges.c.incarnation,
        ingest_db.edges.c.seq_offset,
        ingest_db.edges.c.disk_full,
    )
    .where(ingest_db.edges.c.edge_id == bindparam("edge_id"))
    .with_for_update()
)
_STORED_SEQS = select(ingest_db.events.c.seq, ingest_db.events.c.payload).where(
    ingest_db.events.c.edge_id == bindparam("edge_id"),
    ingest_db.events.c.seq >= bindparam("first"),
    ingest_db.events.c.seq <= bindparam("last"),
)


def _contiguous_ack(edge_id: BindParameter[str], acked: BindParameter[int]) -> ColumnElement[int]:
    """Highest ``n >= acked`` with ``1..n`` all stored (``acked`` is already known contiguous).

    The first stored sequence after ``acked`` whose successor is missing ends the run, provided
    ``acked + 1`` itself is stored. The scan walks the primary key from ``acked``; gaps are rare
    (an edge sends in order) so the run is short.
    """
    e, n = ingest_db.events.alias("e"), ingest_db.events.alias("n")
    next_stored = exists().where(
        and_(ingest_db.events.c.edge_id == edge_id, ingest_db.events.c.seq == acked + 1)
    )
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

    ``b_acked`` is in ``events.seq`` terms; the stored and returned ack is in the edge's numbering
    (minus the stream's ``b_offset``).

    Bind names are prefixed: SQLAlchemy reserves the bare column names for the SET clause.
    """
    edge_id: BindParameter[str] = bindparam("b_edge_id", type_=ingest_db.edges.c.edge_id.type)
    acked: BindParameter[int] = bindparam("b_acked", type_=BigInteger())
    c = ingest_db.edges.c
    return (
        update(ingest_db.edges)
        .where(c.edge_id == edge_id)
        .values(
            acked_through=_contiguous_ack(edge_id, acked) - bindparam("b_offset", type_=BigInteger()),
            events_received=c.events_received + bindparam("b_accepted", type_=BigInteger()),
            duplicates=c.duplicates + bindparam("b_duplicates", type_=BigInteger()),
            events_implausible=c.events_implausible + bindparam("b_implausible", type_=BigInteger()),
            batches=c.batches + 1,
            last_seen=bindparam("b_now", type_=c.last_seen.type),
        )
        .returning(c.acked_through)
    )


_ADVANCE_EDGE = _advance_edge()


__all__ = ["IngestConflict", "IngestResult", "StreamConflict", "UnknownEdge", "ingest_batch", "offset_hint"]
