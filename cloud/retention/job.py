"""The retention job: one replica at a time (:mod:`cloud.core.jobs`) rolls up and drops.

Each run: create PostgreSQL partitions ahead of the clock, fold every bucket older than the
retention period into the roll-up (one short transaction per bucket, at most
``max_buckets_per_run``), then drop the readings partitions wholly behind the new horizon.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db, jobs
from cloud.retention import partitions
from cloud.retention.rollup import RollupResult, roll_up
from shelfsense.config import RetentionSettings

log = logging.getLogger(__name__)

JOB_NAME = "retention"
POLL_S = 60.0  # how often a replica asks whether the run is due (the run itself: interval_s)


@dataclass(frozen=True, slots=True)
class RetentionRun:
    rollup: RollupResult | None  # None: readings are kept for ever (readings_days unset)
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


async def run_once(
    engine: AsyncEngine, settings: RetentionSettings, now: datetime | None = None
) -> RetentionRun:
    """One full run at ``now`` (no claim: callers hold the job's lease, or are tests)."""
    now = db.utc(now) if now is not None else db.utcnow()
    created = await partitions.ensure_ahead(engine, now, settings.partitions_ahead)
    if settings.readings_days is None:
        return RetentionRun(None, created)
    cutoff = now - timedelta(days=settings.readings_days)
    result = await roll_up(engine, cutoff, settings.bucket_s, settings.max_buckets_per_run)
    dropped = await partitions.drop_behind(engine, result.horizon) if result.horizon is not None else []
    return RetentionRun(result, created, dropped)


async def tick(
    engine: AsyncEngine, settings: RetentionSettings, now: datetime | None = None
) -> RetentionRun | None:
    """Run if this replica claims the due tick (None: not due, or another replica has it)."""
    now = db.utc(now) if now is not None else db.utcnow()
    await jobs.ensure_job(engine, JOB_NAME, settings.interval_s)
    if not await jobs.claim_job(engine, JOB_NAME, settings.interval_s, now):
        return None
    try:
        return await run_once(engine, settings, now)
    finally:
        await jobs.finish_job(engine, JOB_NAME)


async def retention_loop(engine: AsyncEngine, settings: RetentionSettings) -> None:
    async def step() -> None:
        run = await tick(engine, settings)
        if run is not None and (run.created or run.dropped or (run.rollup and run.rollup.buckets)):
            log.info(
                "retention: %d buckets rolled up, partitions created %s, dropped %s",
                run.rollup.buckets if run.rollup else 0,
                run.created,
                run.dropped,
            )

    await jobs.run_periodic("retention", step, POLL_S, log)


def retention_job(
    engine: AsyncEngine, settings: RetentionSettings
) -> contextlib.AbstractAsyncContextManager[None]:
    """Run the retention job for the lifetime of the context (the app's lifespan)."""
    job = (lambda: retention_loop(engine, settings)) if settings.enabled else None
    return jobs.background("retention", job)


__all__ = ["JOB_NAME", "RetentionRun", "retention_job", "run_once", "tick"]
