"""The restocking service's periodic job, shared by replicas through the ``jobs`` table: forecast,
plan and export once per interval; plus the synchronous entry points of the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db, jobs
from cloud.replenish.export import ExportSender, export_approved
from cloud.replenish.options import ReplenishOptions
from cloud.replenish.run import RuleNotifier, replenish
from shelfsense.config import ReplenishSettings

log = logging.getLogger(__name__)


JOB_NAME = "replenish"


async def ensure_job(engine: AsyncEngine, interval_s: float) -> None:
    await jobs.ensure_job(engine, JOB_NAME, interval_s)


async def claim_tick(
    engine: AsyncEngine, options: ReplenishOptions, now: datetime | None = None
) -> datetime | None:
    """Claim the due run (one replica runs it); the tick time or None."""
    now = db.utc(now) if now is not None else db.utcnow()
    claimed = await jobs.claim_job(engine, JOB_NAME, options.settings.interval_s, now, options.runner)
    return now if claimed else None


async def job_tick(
    engine: AsyncEngine,
    options: ReplenishOptions,
    now: datetime | None = None,
    notifier: RuleNotifier | None = None,
) -> dict[str, Any] | None:
    """Run if this replica claims the due tick; the run report, or None."""
    tick = await claim_tick(engine, options, now)
    if tick is None:
        return None
    report = await replenish(engine, options, today=tick.date(), notifier=notifier)
    await jobs.finish_job(engine, JOB_NAME)
    return report


async def job_loop(
    engine: AsyncEngine,
    options: ReplenishOptions,
    sender: ExportSender | None,
    notifier: RuleNotifier | None = None,
) -> None:
    """Poll for due runs and approved proposals to export; database failures logged on change only."""
    poll_s = min(max(options.settings.interval_s / 4, 0.05), options.settings.export_poll_s)
    job_exists = False

    async def step() -> None:
        nonlocal job_exists
        if not job_exists:
            await ensure_job(engine, options.settings.interval_s)
            job_exists = True
        report = await job_tick(engine, options, notifier=notifier)
        if report is not None:
            made = sum(len(s["proposals"]) for s in report["sites"])
            log.info("replenish run by %s: %d new proposals", options.runner, made)
        if sender is not None:
            exported, failed = await export_approved(engine, sender, options.settings.webhook_language)
            if exported or failed:
                log.info("proposals exported: %d, failed: %d", exported, failed)

    await jobs.run_periodic("replenish", step, poll_s, log)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("replenish job stopped by a bug", exc_info=task.exception())


def webhook_sender(settings: ReplenishSettings) -> Any:
    """The signed webhook channel of ``settings`` (None when no webhook is configured)."""
    if not settings.webhook_url or settings.webhook_secret is None:
        return None
    from cloud.notify.webhooks import WebhookChannel

    return WebhookChannel(
        settings.webhook_url, settings.webhook_secret.get_secret_value(), name="replenish-export"
    )


@contextlib.asynccontextmanager
async def background_job(
    engine: AsyncEngine, options: ReplenishOptions, notifier: RuleNotifier | None = None
) -> AsyncIterator[None]:
    """Run :func:`job_loop` for the lifetime of the context (the app's lifespan)."""
    sender = webhook_sender(options.settings)
    if not options.settings.enabled and sender is None:
        yield
        return
    task = asyncio.create_task(job_loop(engine, options, sender, notifier), name="replenish-job")
    task.add_done_callback(_report_crash)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if sender is not None:
            await sender.aclose()


def replenish_sync(
    db_url: str, settings: ReplenishSettings, *, site: str | None, dry_run: bool, today: date | None = None
) -> dict[str, Any]:
    """``shelfsense cloud replenish``: one run (or dry run) on ``db_url``; the JSON report."""

    async def main() -> dict[str, Any]:
        from cloud.core.migrate import ensure_schema

        engine = db.create_engine(db_url)
        try:
            await ensure_schema(engine)
            return await replenish(
                engine, ReplenishOptions.from_settings(settings), today=today, site=site, dry_run=dry_run
            )
        finally:
            await engine.dispose()

    return asyncio.run(main())


__all__ = ["JOB_NAME", "background_job", "claim_tick", "job_tick", "replenish_sync"]
