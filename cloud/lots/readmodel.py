"""The lot-evidence read model: each lot's evidence precomputed, kept current by a catch-up job.

Ingest and master-data writes leave *marks* (:mod:`cloud.lots.marks`) in their own
transaction; :func:`refresh` resolves the due marks to lots, recomputes those lots with the full
computation of :mod:`cloud.lots.service` (the oracle, also behind the lot report) and stores the
result in ``lot_evidence`` / ``lot_evidence_stock``. A lot's recompute costs its own history
(its items' movements and the readings of the zones it stayed in), never the site's.

Between two recomputes, time alone changes a lot's evidence only in a known way once no reading
is still being held in an open stay: every later second is unobserved and charged at the
reference temperature (relative rate exactly 1), so consumed shelf life grows by the elapsed time
and the dynamic expiry stays put. Such rows have ``stable_from`` NULL and are served shifted to
the request's time (:mod:`cloud.lots.pages`); rows still changing (``stable_from`` set)
are recomputed by every refresh, at most every ``min_refresh_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.coldchain import lot_history as lh
from cloud.coldchain import sensor_tables as sensors_db
from cloud.coldchain.evidence_tables import lot_evidence, lot_evidence_marks, lot_evidence_stock
from cloud.core import db, jobs
from cloud.ingest.projections import dialect_insert
from cloud.lots import evidence as lots_evidence
from cloud.lots import history as lots_history
from cloud.lots.marks import insert_marks, lot_marks
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db

log = logging.getLogger(__name__)

LotKey = tuple[str, str]
NEVER = datetime(9999, 12, 31, tzinfo=UTC)  # FEFO sort key of a lot without any date: last


@dataclass(frozen=True, slots=True)
class ReadModelOptions:
    enabled: bool = True
    poll_s: float = 2.0
    # A lot is recomputed at most this often (its marks wait meanwhile): lots in zones with live
    # sensors change every minute, and a recompute costs the lot's history; expiry is in days.
    min_refresh_s: float = 300.0
    max_marks: int = 1000  # per refresh
    max_lots: int = 500  # per refresh (new and still-changing lots)
    write_chunk: int = 100  # lots per (short) write transaction


@dataclass(frozen=True, slots=True)
class RefreshResult:
    lots: int
    marks: int
    deleted: int


# --- one lot --------------------------------------------------------------------------------------


def stable_from(
    evidence: lots_evidence.LotEvidence, max_gap_s: float = lh.DEFAULT_MAX_GAP_S
) -> datetime | None:
    """When time alone stops changing the evidence other than by the known shift (None: already).

    A piece ending at ``now`` in an open stay is a reading still held: it holds at most until its
    start + ``max_gap_s``. A never-seen lot whose label start (printed - nominal days) is after
    ``now`` starts at ``now`` until then.
    """
    h = evidence.history
    now_s = lh.epoch(h.now)
    until = now_s
    for stays, pieces in h.pieces.items():
        if stays and stays[-1].open:
            until = max([until, *(p.start + max_gap_s for p in pieces if p.end >= now_s)])
    model = h.product.model
    if not h.paths and model is not None and h.printed_expiry is not None:
        printed = lots_evidence.printed_datetime(h.printed_expiry)
        assert printed is not None
        until = max(until, lh.epoch(printed - timedelta(days=model.nominal_days)))
    return lh.from_epoch(until) if until > now_s else None


def evidence_row(evidence: lots_evidence.LotEvidence) -> dict[str, Any]:
    """The ``lot_evidence`` row of an evaluated lot (as of its history's ``now``)."""
    h, life = evidence.history, evidence.shelf_life
    expiry = evidence.as_lot_expiry()
    effective = evidence.effective_expiry
    return {
        "sku": h.sku,
        "lot_code": h.lot_code,
        "lot_id": h.id,
        "printed_expiry": h.printed_expiry,
        "items": len(h.epcs),
        "on_hand": evidence.quantity,
        "mkt_c": evidence.mkt_c,
        "observed_s": evidence.observed_s,
        "above_s": evidence.excursions.above_s,
        "below_s": evidence.excursions.below_s,
        "has_model": life is not None,
        "consumed_days": None if life is None else life.consumed_days,
        "remaining_days": None if life is None else life.remaining_days,
        "dynamic_expiry": None if life is None else life.dynamic_expiry,
        "effective_expiry": effective,
        "fefo_key": effective or NEVER,
        "expiry_source": expiry.expiry_source,
        "floating": life is not None and not h.paths and h.printed_expiry is None,
        "as_of": h.now,
        "stable_from": stable_from(evidence),
    }


def stock_rows(evidence: lots_evidence.LotEvidence) -> list[dict[str, Any]]:
    h = evidence.history
    return [
        {"sku": h.sku, "lot_code": h.lot_code, "site_id": site, "location": loc or "", "quantity": n}
        for (site, loc), n in h.on_hand.items()
        if n > 0
    ]


async def compute(engine: AsyncEngine, key: LotKey, now: datetime) -> lots_evidence.LotEvidence | None:
    """The lot's evidence at ``now`` (None: the lot no longer exists). Loading is a short read on
    its own connection; the evaluation (numpy, pure) runs in a worker thread, off the event loop."""
    async with engine.connect() as conn:
        try:
            history = await lots_history.load_history(conn, key, now)
        except lots_history.LotNotFound:
            return None
    return await asyncio.to_thread(lots_evidence.evaluate, history)


# --- resolving marks ------------------------------------------------------------------------------


def _lot_pairs(rows: Iterable[Any]) -> set[LotKey]:
    return {(r[0], r[1]) for r in rows if r[1] is not None}


async def _zone_lots(conn: AsyncConnection, site_id: str, zone: str, since: datetime) -> set[LotKey]:
    """Lots that may have been in ``zone`` at or after ``since``: on hand there now, or moved at the
    site since (an item that was there at ``since`` and left has a movement after it)."""
    i, s, m = masterdata_db.items, stock_db.stock_items, stock_db.stock_movements
    present = (
        select(i.c.sku, i.c.lot_code)
        .join(s, s.c.epc == i.c.epc)
        .where(s.c.site_id == site_id, s.c.present.is_(True), s.c.location == zone)
        .distinct()
    )
    moved = (
        select(i.c.sku, i.c.lot_code)
        .join(m, m.c.epc == i.c.epc)
        .where(m.c.site_id == site_id, m.c.at >= since)
        .distinct()
    )
    return _lot_pairs(await conn.execute(present)) | _lot_pairs(await conn.execute(moved))


async def _next_reading(conn: AsyncConnection, mark: Row[Any], now: datetime) -> datetime | None:
    """The first reading of the mark's zone after ``now`` within the mark's span (future-dated)."""
    r = sensors_db.sensor_readings
    return await conn.scalar(
        select(func.min(r.c.time)).where(
            r.c.zone == mark.zone,
            r.c.site_id == mark.site_id,
            r.c.quantity == "temperature",
            r.c.time > now,
            r.c.time <= mark.until,
        )
    )


@dataclass(slots=True)
class Resolved:
    """What a set of marks touches: lots changed by readings (recomputed at most every
    ``min_refresh_s``), lots changed by movements or master data (recomputed at once: stock and
    labels are discrete business facts), and marks to keep for later (id -> new due time)."""

    by_readings: set[LotKey]
    at_once: set[LotKey]
    later: dict[int, datetime]


async def resolve(conn: AsyncConnection, marks: Sequence[Row[Any]], now: datetime) -> Resolved:
    out = Resolved(set(), set(), {})
    i, lots = masterdata_db.items, masterdata_db.lots
    for mark in marks:
        if mark.zone is not None:
            out.by_readings |= await _zone_lots(conn, mark.site_id, mark.zone, mark.since)
            if mark.until is not None and db.utc(mark.until) > now:
                following = await _next_reading(conn, mark, now)
                if following is not None:
                    out.later[mark.id] = db.utc(following)
        elif mark.epc is not None:  # its stock now, and its stays once the movement's time comes
            query = select(i.c.sku, i.c.lot_code).where(i.c.epc == mark.epc)
            out.at_once |= _lot_pairs(await conn.execute(query))
            if mark.until is not None and db.utc(mark.until) > now:
                out.later[mark.id] = db.utc(mark.until)
        elif mark.lot_code is not None:
            out.at_once.add((mark.sku, mark.lot_code))
        elif mark.sku is not None:
            e = lot_evidence
            out.at_once |= _lot_pairs(
                await conn.execute(select(lots.c.sku, lots.c.lot_code).where(lots.c.sku == mark.sku))
            )
            out.at_once |= _lot_pairs(
                await conn.execute(select(e.c.sku, e.c.lot_code).where(e.c.sku == mark.sku))
            )
    return out


async def _as_of(conn: AsyncConnection, keys: Sequence[LotKey]) -> dict[LotKey, datetime]:
    e = lot_evidence
    found: dict[LotKey, datetime] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = await conn.execute(
            select(e.c.sku, e.c.lot_code, e.c.as_of).where(tuple_(e.c.sku, e.c.lot_code).in_(chunk))
        )
        found.update({(r.sku, r.lot_code): db.utc(r.as_of) for r in rows})
    return found


async def _unmodelled(conn: AsyncConnection, limit: int) -> set[LotKey]:
    """Lots without a read-model row yet (new, or from before the read model existed)."""
    lots, e = masterdata_db.lots, lot_evidence
    query = (
        select(lots.c.sku, lots.c.lot_code)
        .outerjoin(e, and_(e.c.sku == lots.c.sku, e.c.lot_code == lots.c.lot_code))
        .where(e.c.sku.is_(None))
        .limit(limit)
    )
    return _lot_pairs(await conn.execute(query))


async def _changing(conn: AsyncConnection, before: datetime, limit: int) -> set[LotKey]:
    """Rows still changing with time alone, last computed at or before ``before``, oldest first."""
    e = lot_evidence
    query = (
        select(e.c.sku, e.c.lot_code)
        .where(e.c.stable_from.is_not(None), e.c.as_of <= before)
        .order_by(e.c.as_of)
        .limit(limit)
    )
    return _lot_pairs(await conn.execute(query))


# --- the refresh ----------------------------------------------------------------------------------


async def _store(engine: AsyncEngine, computed: dict[LotKey, lots_evidence.LotEvidence | None]) -> int:
    """Write recomputed lots (newer ``as_of`` wins a race between replicas); returns deletions."""
    e, st = lot_evidence, lot_evidence_stock
    gone = [k for k, v in computed.items() if v is None]
    rows = [evidence_row(v) for v in computed.values() if v is not None]
    stock = [r for v in computed.values() if v is not None for r in stock_rows(v)]
    keys = list(computed)
    async with db.write_transaction(engine) as conn:
        await conn.execute(delete(st).where(tuple_(st.c.sku, st.c.lot_code).in_(keys)))
        if gone:
            await conn.execute(delete(e).where(tuple_(e.c.sku, e.c.lot_code).in_(gone)))
        if rows:
            stmt = dialect_insert(conn, e)
            stmt = stmt.on_conflict_do_update(
                index_elements=["sku", "lot_code"],
                set_={c: stmt.excluded[c] for c in rows[0] if c not in ("sku", "lot_code")},
                where=stmt.excluded.as_of >= e.c.as_of,
            )
            await conn.execute(stmt, rows)
        if stock:
            await conn.execute(st.insert(), stock)
    return len(gone)


async def _settle_marks(
    engine: AsyncEngine, done: Sequence[int], later: dict[int, datetime], deferred: list[dict[str, Any]]
) -> None:
    m = lot_evidence_marks
    async with db.write_transaction(engine) as conn:
        for start in range(0, len(done), 1000):
            await conn.execute(delete(m).where(m.c.id.in_(done[start : start + 1000])))
        for mark_id, due in later.items():
            await conn.execute(update(m).where(m.c.id == mark_id).values(due_at=due, since=due))
        await insert_marks(conn, deferred)


async def refresh(
    engine: AsyncEngine, *, now: datetime | None = None, options: ReadModelOptions | None = None
) -> RefreshResult:
    """Fold the due marks, the lots without a row and the still-changing rows into the read model."""
    options = options or ReadModelOptions()
    now = db.utc(now) if now is not None else db.utcnow()
    m = lot_evidence_marks
    recent = now - timedelta(seconds=options.min_refresh_s)
    async with engine.connect() as conn:
        marks = (
            await conn.execute(
                select(m).where(m.c.due_at <= now).order_by(m.c.due_at, m.c.id).limit(options.max_marks)
            )
        ).all()
        found = await resolve(conn, marks, now)
        as_of = await _as_of(conn, sorted(found.by_readings - found.at_once))
        keys = await _unmodelled(conn, options.max_lots) | await _changing(conn, recent, options.max_lots)
    later = found.later
    deferred = {k: t + timedelta(seconds=options.min_refresh_s) for k, t in as_of.items() if t > recent}
    keys |= found.at_once | (found.by_readings - set(deferred))
    deleted = 0
    ordered = sorted(keys)
    for start in range(0, len(ordered), options.write_chunk):
        chunk = ordered[start : start + options.write_chunk]
        computed = {key: await compute(engine, key, now) for key in chunk}
        deleted += await _store(engine, computed)
    deferred_marks = [
        row | {"due_at": due}
        for (sku, code), due in deferred.items()
        for row in lot_marks([(sku, code)], due)
    ]
    await _settle_marks(engine, [mark.id for mark in marks if mark.id not in later], later, deferred_marks)
    return RefreshResult(len(ordered), len(marks), deleted)


async def read_model_loop(engine: AsyncEngine, options: ReadModelOptions) -> None:
    async def step() -> None:
        result = await refresh(engine, options=options)
        if result.lots or result.deleted:
            log.debug(
                "lot read model: %d lots recomputed, %d marks, %d deleted",
                result.lots,
                result.marks,
                result.deleted,
            )

    await jobs.run_periodic("lot read model", step, options.poll_s, log)


def read_model_job(
    engine: AsyncEngine, options: ReadModelOptions | None = None
) -> contextlib.AbstractAsyncContextManager[None]:
    """Run the catch-up for the lifetime of the context (the app's lifespan)."""
    options = options or ReadModelOptions()
    job = (lambda: read_model_loop(engine, options)) if options.enabled else None
    return jobs.background("lot-read-model", job)


__all__ = [
    "NEVER",
    "ReadModelOptions",
    "RefreshResult",
    "evidence_row",
    "read_model_job",
    "refresh",
    "stable_from",
]
