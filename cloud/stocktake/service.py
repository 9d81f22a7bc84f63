"""Continuous stocktake: the store layer around :mod:`cloud.stocktake.reconcile`, and its job.

A run reconciles one site over one window ``[end - window_s, end)``: it loads the book
(``stock_items``), the observations of the window (grouped by EPC and location), the unseen-window
counters and each location's read-rate history, calls the pure :func:`reconcile`, and stores the
run, one row per covered location, and the discrepancies *as episodes*: a discrepancy seen again
keeps its row (``last_run_id`` moves on), a new one opens a row, one no longer seen is closed as
``resolved`` by this run. The run's ``new_discrepancies`` / ``resolved_discrepancies`` are the
delta against the previous run.

Each site is reconciled in its own write transaction, serialised per site (PostgreSQL advisory
transaction lock; SQLite's ``BEGIN IMMEDIATE``), so a manual run and the periodic job never
interleave. The periodic job is shared by all replicas through the ``jobs`` table: a replica runs
a tick only if it claims the job row with ``SELECT ... FOR UPDATE SKIP LOCKED`` while it is due,
and moves ``next_run_at`` forward in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db, jobs
from cloud.core.errors import CloudError
from cloud.ingest.projections import insert_history, upsert_latest
from cloud.lots.marks import mark_events
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db
from cloud.stocktake import tables as stocktake_db
from cloud.stocktake.reconcile import ReconcileInput, ReconcileParams, ReconcileResult, reconcile
from shelfsense.contract import SequencedEvent, StockMovement

log = logging.getLogger(__name__)

JOB_NAME = "stocktake"
CLOUD_EDGE_ID = "cloud"  # origin of movements posted by the cloud itself (accepted discrepancies)
LIVE = ("open", "dismissed")


def default_runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class StocktakeOptions:
    """How often and over which window the cloud reconciles; part of ``create_app``'s options."""

    enabled: bool = True
    interval_s: float = 300.0
    window_s: float | None = None  # default: the interval, so windows tile time
    params: ReconcileParams = field(default_factory=ReconcileParams)
    runner: str = field(default_factory=default_runner_id)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_s if self.window_s is not None else self.interval_s)


class DiscrepancyNotOpen(CloudError):
    """The discrepancy does not exist or was already decided."""

    status_code = 409
    code = "not_open"


# --- one run ----------------------------------------------------------------------------------------


async def _site_lock(conn: AsyncConnection, site_id: str) -> None:
    if conn.dialect.name == "postgresql":
        key = 0x5354_0000_0000 + zlib.crc32(site_id.encode())  # "ST" + site hash
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _load_input(
    conn: AsyncConnection, site_id: str, start: datetime, end: datetime, params: ReconcileParams
) -> ReconcileInput | None:
    covered = set(
        (
            await conn.execute(
                select(masterdata_db.locations.c.location_id).where(
                    masterdata_db.locations.c.site_id == site_id,
                    masterdata_db.locations.c.rfid_coverage.is_(True),
                )
            )
        ).scalars()
    )
    if not covered:
        return None
    s = stock_db.stock_items
    book = (
        await conn.execute(
            select(s.c.epc, s.c.location).where(
                s.c.site_id == site_id, s.c.present.is_(True), s.c.location.is_not(None)
            )
        )
    ).all()
    o = stock_db.tag_observations
    observed = (
        await conn.execute(
            select(o.c.epc, o.c.location, func.sum(o.c.count))
            .where(
                o.c.site_id == site_id,
                o.c.location.is_not(None),
                o.c.last_seen >= start,
                o.c.first_seen < end,
            )
            .group_by(o.c.epc, o.c.location)
        )
    ).all()
    known = set((await conn.execute(select(masterdata_db.items.c.epc))).scalars())
    known.update((await conn.execute(select(s.c.epc).where(s.c.site_id == site_id))).scalars())
    # A tag that crossed a portal in an unknown direction is this site's: seen on a shelf it is
    # "unexpected" (book it in), not a foreign "unknown" tag.
    p = stock_db.portal_passages
    unresolved = select(p.c.epc).where(
        p.c.site_id == site_id, p.c.direction == "unknown", p.c.resolved_run_id.is_(None)
    )
    known.update((await conn.execute(unresolved)).scalars())
    t = stocktake_db.stocktake_streaks
    streaks = {
        epc: n
        for epc, n in await conn.execute(select(t.c.epc, t.c.unseen_windows).where(t.c.site_id == site_id))
    }
    return ReconcileInput(
        book_epcs=[r[0] for r in book],
        book_locations=[r[1] for r in book],
        obs_epcs=[r[0] for r in observed],
        obs_locations=[r[1] for r in observed],
        obs_counts=[int(r[2]) for r in observed],
        covered=covered,
        known_epcs=known,
        streaks=streaks,
        history=await _history(conn, site_id, params.history_windows),
    )


async def _history(conn: AsyncConnection, site_id: str, windows: int) -> dict[str, list[float]]:
    """Read rates of the last ``windows`` runs' "ok" location results, oldest first."""
    r, loc = stocktake_db.stocktake_runs, stocktake_db.stocktake_locations
    recent = select(r.c.id).where(r.c.site_id == site_id).order_by(r.c.id.desc()).limit(windows).subquery()
    rows = await conn.execute(
        select(loc.c.location, loc.c.read_rate)
        .where(loc.c.run_id.in_(select(recent.c.id)), loc.c.status == "ok", loc.c.read_rate.is_not(None))
        .order_by(loc.c.run_id)
    )
    history: dict[str, list[float]] = {}
    for location, rate in rows:
        history.setdefault(location, []).append(float(rate))
    return history


async def _store_result(
    conn: AsyncConnection, site_id: str, run_id: int, result: ReconcileResult
) -> tuple[int, int]:
    """Location rows, discrepancy episodes and counters; returns (new, resolved)."""
    if result.locations:
        await conn.execute(
            stocktake_db.stocktake_locations.insert(),
            [
                {
                    "run_id": run_id,
                    "location": lr.location,
                    "status": lr.status,
                    "book_count": lr.book_count,
                    "seen_count": lr.seen_count,
                    "observed_count": lr.observed_count,
                    "read_rate": lr.read_rate,
                    "baseline_read_rate": lr.baseline_read_rate,
                    "confidence": lr.confidence,
                }
                for lr in result.locations
            ],
        )
    d = stocktake_db.stocktake_discrepancies
    live = {
        (row.kind, row.epc, row.location): (row.id, row.status)
        for row in await conn.execute(
            select(d.c.id, d.c.kind, d.c.epc, d.c.location, d.c.status).where(
                d.c.site_id == site_id, d.c.status.in_(LIVE)
            )
        )
    }
    current = {(x.kind, x.epc, x.location): x for x in result.discrepancies}
    still = [
        {"b_id": live[key][0], "b_unseen": x.unseen_windows} for key, x in current.items() if key in live
    ]
    if still:
        await conn.execute(
            update(d)
            .where(d.c.id == bindparam("b_id"))
            .values(last_run_id=run_id, unseen_windows=bindparam("b_unseen")),
            still,
        )
    new = [
        {
            "site_id": site_id,
            "kind": x.kind,
            "epc": x.epc,
            "location": x.location,
            "book_location": x.book_location,
            "status": "open",
            "unseen_windows": x.unseen_windows,
            "first_run_id": run_id,
            "last_run_id": run_id,
        }
        for key, x in current.items()
        if key not in live
    ]
    if new:
        await conn.execute(d.insert(), new)
    gone = [{"b_id": ident} for key, (ident, _status) in live.items() if key not in current]
    if gone:
        await conn.execute(
            update(d).where(d.c.id == bindparam("b_id")).values(status="resolved", resolved_run_id=run_id),
            gone,
        )
    t = stocktake_db.stocktake_streaks
    await conn.execute(t.delete().where(t.c.site_id == site_id))
    if result.streaks:
        await conn.execute(
            t.insert(),
            [{"site_id": site_id, "epc": e, "unseen_windows": n} for e, n in result.streaks.items()],
        )
    return len(new), len(gone)


async def _resolve_unknown_passages(
    conn: AsyncConnection, site_id: str, run_id: int, window_start: datetime
) -> int:
    """Direction-unknown passages before this run's window are resolved by it: the run compared
    the book with where the tags were read afterwards, so an item that did cross is now one of its
    discrepancies (unexpected / missing / misplaced) for the operator to accept."""
    p = stock_db.portal_passages
    result = await conn.execute(
        update(p)
        .where(
            p.c.site_id == site_id,
            p.c.direction == "unknown",
            p.c.resolved_run_id.is_(None),
            p.c.at < window_start,
        )
        .values(resolved_run_id=run_id)
    )
    return int(result.rowcount or 0)


async def run_site(engine: AsyncEngine, site_id: str, end: datetime, options: StocktakeOptions) -> int | None:
    """Reconcile one site for the window ending at ``end``; the run id, or None (no coverage)."""
    end = db.utc(end)
    start = end - options.window
    async with db.write_transaction(engine) as conn:
        await _site_lock(conn, site_id)
        data = await _load_input(conn, site_id, start, end, options.params)
        if data is None:
            return None
        result = await asyncio.to_thread(reconcile, data, options.params)
        run_id = (
            await conn.execute(
                stocktake_db.stocktake_runs.insert()
                .values(
                    site_id=site_id,
                    window_start=start,
                    window_end=end,
                    started_at=db.utcnow(),
                    runner=options.runner,
                    missing_after_windows=options.params.missing_after_windows,
                    missing=result.count("missing"),
                    misplaced=result.count("misplaced"),
                    unexpected=result.count("unexpected"),
                    unknown=result.count("unknown"),
                )
                .returning(stocktake_db.stocktake_runs.c.id)
            )
        ).scalar_one()
        new, resolved = await _store_result(conn, site_id, run_id, result)
        await _resolve_unknown_passages(conn, site_id, run_id, start)
        await conn.execute(
            update(stocktake_db.stocktake_runs)
            .where(stocktake_db.stocktake_runs.c.id == run_id)
            .values(new_discrepancies=new, resolved_discrepancies=resolved, finished_at=db.utcnow())
        )
    return int(run_id)


async def run_all_sites(engine: AsyncEngine, end: datetime, options: StocktakeOptions) -> list[int]:
    """One run per site that has RFID-covered locations."""
    async with engine.connect() as conn:
        sites = list(
            (
                await conn.execute(
                    select(masterdata_db.locations.c.site_id)
                    .where(masterdata_db.locations.c.rfid_coverage.is_(True))
                    .distinct()
                )
            ).scalars()
        )
    runs = []
    for site_id in sorted(sites):
        run_id = await run_site(engine, site_id, end, options)
        if run_id is not None:
            runs.append(run_id)
    return runs


# --- operator decisions -----------------------------------------------------------------------------


def _adjustment(row: Any, now: datetime) -> StockMovement:
    """The movement that makes the book agree with what the readers saw."""
    if row.kind == "missing":
        return StockMovement(
            epc=row.epc, from_location=row.book_location, to_location=None, reason="adjustment", at=now
        )
    return StockMovement(
        epc=row.epc, from_location=row.book_location, to_location=row.location, reason="stocktake", at=now
    )


async def decide(engine: AsyncEngine, discrepancy_id: int, decision: str, user: str) -> dict[str, Any]:
    """Accept (post the adjusting movement) or dismiss an open discrepancy; returns the updated row."""
    if decision not in ("accept", "dismiss"):
        raise ValueError(f"unknown decision {decision!r}")
    d = stocktake_db.stocktake_discrepancies
    async with db.write_transaction(engine) as conn:
        row = (
            await conn.execute(
                select(d).where(d.c.id == discrepancy_id, d.c.status == "open").with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise DiscrepancyNotOpen(f"discrepancy {discrepancy_id} is not open")
        now = db.utcnow()
        if decision == "accept":
            item = SequencedEvent(seq=discrepancy_id, event=_adjustment(row, now))
            await insert_history(conn, row.site_id, CLOUD_EDGE_ID, [item])
            await upsert_latest(conn, row.site_id, CLOUD_EDGE_ID, [item])
            await mark_events(conn, row.site_id, [item])  # the lot read model follows the adjustment
            await conn.execute(
                stocktake_db.stocktake_streaks.delete().where(
                    and_(
                        stocktake_db.stocktake_streaks.c.site_id == row.site_id,
                        stocktake_db.stocktake_streaks.c.epc == row.epc,
                    )
                )
            )
        status = "accepted" if decision == "accept" else "dismissed"
        await conn.execute(
            update(d).where(d.c.id == discrepancy_id).values(status=status, decided_by=user, decided_at=now)
        )
        updated = (await conn.execute(select(d).where(d.c.id == discrepancy_id))).mappings().one()
    return dict(updated)


# --- the shared periodic job ------------------------------------------------------------------------


async def ensure_job(engine: AsyncEngine, interval_s: float) -> None:
    await jobs.ensure_job(engine, JOB_NAME, interval_s)


async def claim_tick(
    engine: AsyncEngine, options: StocktakeOptions, now: datetime | None = None
) -> datetime | None:
    """Claim the job if it is due; returns the tick time (the window end) or None."""
    now = db.utc(now) if now is not None else db.utcnow()
    return now if await jobs.claim_job(engine, JOB_NAME, options.interval_s, now, options.runner) else None


async def job_tick(engine: AsyncEngine, options: StocktakeOptions, now: datetime | None = None) -> list[int]:
    """Run the stocktake if this replica claims the due tick; the run ids (empty if not)."""
    tick = await claim_tick(engine, options, now)
    if tick is None:
        return []
    runs = await run_all_sites(engine, tick, options)
    async with engine.begin() as conn:
        await conn.execute(
            update(db.jobs).where(db.jobs.c.name == JOB_NAME).values(last_finished_at=db.utcnow())
        )
    return runs


async def job_loop(engine: AsyncEngine, options: StocktakeOptions) -> None:
    """Poll for due ticks until cancelled; a failing database is logged on state change only."""
    job_exists = False

    async def step() -> None:
        nonlocal job_exists
        if not job_exists:
            await ensure_job(engine, options.interval_s)
            job_exists = True
        runs = await job_tick(engine, options)
        if runs:
            log.info("stocktake runs %s by %s", runs, options.runner)

    await jobs.run_periodic("stocktake", step, min(max(options.interval_s / 4, 0.05), 10.0), log)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("stocktake job stopped by a bug", exc_info=task.exception())


@contextlib.asynccontextmanager
async def background_job(engine: AsyncEngine, options: StocktakeOptions) -> AsyncIterator[None]:
    """Run :func:`job_loop` for the lifetime of the context (the app's lifespan)."""
    if not options.enabled:
        yield
        return
    task = asyncio.create_task(job_loop(engine, options), name="stocktake-job")
    task.add_done_callback(_report_crash)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # a crash was logged by the callback


__all__ = [
    "JOB_NAME",
    "DiscrepancyNotOpen",
    "StocktakeOptions",
    "background_job",
    "claim_tick",
    "decide",
    "ensure_job",
    "job_loop",
    "job_tick",
    "run_all_sites",
    "run_site",
]
