"""Periodic background jobs shared by several cloud replicas: exactly one replica runs each tick.

Each job has a row in the ``jobs`` table. A replica *claims* a due tick by locking that row with
``FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite the write transaction's lock serialises claims) and
moving ``next_run_at`` forward in the same short transaction. A replica finding the row locked skips
the tick instead of waiting for it, and the claim commits before the work starts, so a long run never
holds the lock.

The row is also a lease: the claim sets ``lease_until`` and :func:`finish_job` clears it. While it
holds, no replica claims the job, so a run that outlasts its interval is not overlapped by the next
one elsewhere. A replica that dies mid-run keeps the others out only until ``lease_until``; a job
that never calls :func:`finish_job` gets a lease of one interval, which is the plain schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db
from cloud.core.metrics import JOB_DURATION, JOB_RUNS
from cloud.ingest.projections import dialect_insert


async def ensure_job(engine: AsyncEngine, name: str, interval_s: float) -> None:
    """Create the job row, first tick one interval from now, unless another replica did."""
    async with db.write_transaction(engine) as conn:
        stmt = dialect_insert(conn, db.jobs).values(
            name=name, next_run_at=db.utcnow() + timedelta(seconds=interval_s), runs=0
        )
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))


async def claim_job(
    engine: AsyncEngine,
    name: str,
    interval_s: float,
    now: datetime,
    runner: str | None = None,
    lease_s: float | None = None,
) -> bool:
    """Claim the tick of job ``name`` if it is due at ``now`` and no run holds its lease; True when
    this replica won it. The lease lasts ``lease_s`` (at least one interval) or until :func:`finish_job`."""
    j = db.jobs
    lease = max(interval_s, lease_s or 0.0)
    async with db.write_transaction(engine) as conn:
        free = or_(j.c.lease_until.is_(None), j.c.lease_until <= now)
        due = await conn.scalar(
            select(j.c.name)
            .where(j.c.name == name, j.c.next_run_at <= now, free)
            .with_for_update(skip_locked=True)
        )
        if due is None:
            return False
        await conn.execute(
            update(j)
            .where(j.c.name == name)
            .values(
                next_run_at=now + timedelta(seconds=interval_s),
                last_started_at=now,
                last_runner=runner,
                runs=j.c.runs + 1,
                lease_until=now + timedelta(seconds=lease),
            )
        )
    return True


async def finish_job(engine: AsyncEngine, name: str, now: datetime | None = None) -> None:
    """Record the end of this replica's run of ``name`` and release its lease."""
    async with db.write_transaction(engine) as conn:
        await conn.execute(
            update(db.jobs)
            .where(db.jobs.c.name == name)
            .values(last_finished_at=now or db.utcnow(), lease_until=None)
        )


async def run_periodic(
    label: str, step: Callable[[], Awaitable[None]], poll_s: float, log: logging.Logger
) -> None:
    """Await ``step`` every ``poll_s`` until cancelled (the background jobs' one loop).

    A database that is down or locked is logged on state change only ("<label> job failing",
    "<label> job recovered") and tried again at the next poll; anything else is a bug and propagates.
    """
    failing = False
    runs, duration = JOB_RUNS.labels(label, "ok"), JOB_DURATION.labels(label)
    while True:
        started = time.perf_counter()
        try:
            await step()
            runs.inc()
            if failing:
                log.info("%s job recovered", label)
                failing = False
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            JOB_RUNS.labels(label, "failed").inc()
            if not failing:
                log.warning("%s job failing: %s", label, type(exc).__name__)
                failing = True
        finally:
            duration.observe(time.perf_counter() - started)
        await asyncio.sleep(poll_s)


@contextlib.asynccontextmanager
async def background(name: str, job: Callable[[], Coroutine[None, None, None]] | None) -> AsyncIterator[None]:
    """Run ``job()`` as a task for the lifetime of the context (the app's lifespan); ``None``: a
    disabled job, nothing runs."""
    if job is None:
        yield
        return
    task = asyncio.create_task(job(), name=name)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
