"""Periodic background jobs shared by several cloud replicas: exactly one replica runs each tick.

Each job has a row in the ``jobs`` table. A replica *claims* a due tick by locking that row with
``FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite the write transaction's lock serialises claims) and
moving ``next_run_at`` forward in the same short transaction. A replica finding the row locked skips
the tick instead of waiting for it, and the claim commits before the work starts, so a long run never
holds the lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db
from cloud.core.metrics import JOB_DURATION, JOB_RUNS
from cloud.services.projections import dialect_insert


async def ensure_job(engine: AsyncEngine, name: str, interval_s: float) -> None:
    """Create the job row, first tick one interval from now, unless another replica did."""
    async with db.write_transaction(engine) as conn:
        stmt = dialect_insert(conn, db.jobs).values(
            name=name, next_run_at=db.utcnow() + timedelta(seconds=interval_s), runs=0
        )
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))


async def claim_job(
    engine: AsyncEngine, name: str, interval_s: float, now: datetime, runner: str | None = None
) -> bool:
    """Claim the tick of job ``name`` if it is due at ``now``; True when this replica won it."""
    j = db.jobs
    async with db.write_transaction(engine) as conn:
        due = await conn.scalar(
            select(j.c.name).where(j.c.name == name, j.c.next_run_at <= now).with_for_update(skip_locked=True)
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
            )
        )
    return True


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
