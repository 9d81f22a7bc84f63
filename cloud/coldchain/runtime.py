"""The running side of cold-chain alerting: InfluxDB export and the periodic tick.

One :class:`ColdChainRuntime` lives for the app's lifespan (:func:`coldchain_runtime`). Everything
here happens *after* a commit and never blocks the caller:

- :meth:`ColdChainRuntime.after_ingest` hands a batch's alert transitions to the
  :class:`~cloud.notify.notifier.Notifier` (audience, wording, dispatch, delivery log) and its
  readings, device health and the zones' limits to the :class:`~cloud.influx.InfluxWriter` when
  ``[cloud.influx]`` is configured; every transition the notifier sees is annotated in InfluxDB too.
  The writer flushes on shutdown.
- The periodic tick (gap alerts, escalation, held digests) runs on one replica at a time via the
  ``jobs`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import FastAPI
from influxdb_client import Point
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.alerts.rules import ColdChainRules, Limits
from cloud.coldchain.service import Notice, claim_tick, ensure_job, escalation_tick, finish_tick, gap_tick
from cloud.core import db
from cloud.core.config import zone_limits
from cloud.core.jobs import run_periodic
from cloud.influx import (
    alert_point,
    build_influx,
    device_health_point,
    edge_health_point,
    reading_limits,
    reading_point,
    zone_limits_point,
)
from cloud.ingest.service import IngestResult
from cloud.notify import AlertMessage
from cloud.notify.notifier import Notifier
from shelfsense.config import Settings
from shelfsense.contract import DeviceHealth, SensorReading

log = logging.getLogger(__name__)

LIMITS_REFRESH = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ColdChainOptions:
    """Runtime knobs beside the settings (tests and benches); ``tick_s`` overrides the settings'."""

    job_enabled: bool = True
    tick_s: float | None = None
    runner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    )
    drain_timeout_s: float = 10.0
    clock: Callable[[], datetime] = db.utcnow  # what the alert-storm gate calls "now"


def _event_time(notice: Notice, now: datetime) -> datetime:
    """When it happened in the readings' time line (so annotations sit on the chart's excursion)."""
    a = notice.alert
    if notice.state == "raised":
        return db.utc(a["first_breach_at"])
    if notice.state == "resolved" and a.get("resolved_at") is not None:
        return db.utc(a["resolved_at"])
    return now


def event_moment(event: object) -> datetime | None:
    """The edge-side time of an event (what the sync lag is measured from)."""
    for name in ("time", "at", "last_seen"):
        value = getattr(event, name, None)
        if isinstance(value, datetime):
            return db.utc(value)
    return None


class ColdChainRuntime:
    """InfluxDB hand-off and the periodic tick of one cloud process; people are told through
    ``notifier``."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        notifier: Notifier,
        options: ColdChainOptions | None = None,
    ) -> None:
        cs = settings.cloud.coldchain
        self.options = options or ColdChainOptions()
        self.engine = engine
        self.settings = cs
        self.notifier = notifier
        self.rules = ColdChainRules.from_settings(cs)
        self.zones = zone_limits(settings)
        self.tick_s = self.options.tick_s if self.options.tick_s is not None else cs.tick_s
        self.influx = build_influx(settings.cloud.influx) if settings.cloud.influx is not None else None
        self._job_task: asyncio.Task[None] | None = None
        self._limits_written: dict[tuple[str, str], tuple[Limits, datetime]] = {}
        if self.influx is not None:
            notifier.observe(self._annotate)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.influx is not None:
            self.influx.start()
        if self.options.job_enabled:
            self._job_task = asyncio.create_task(self._job_loop(), name="coldchain-job")
            self._job_task.add_done_callback(_report_crash)

    async def aclose(self) -> None:
        """Stop the tick and flush InfluxDB (bounded)."""
        if self._job_task is not None:
            self._job_task.cancel()
            await asyncio.gather(self._job_task, return_exceptions=True)
        if self.influx is not None:
            await self.influx.close(timeout_s=self.options.drain_timeout_s)

    # --- after a commit -------------------------------------------------------------------------

    def _annotate(self, notice: Notice, message: AlertMessage, now: datetime) -> None:
        """Every alert transition as an InfluxDB annotation (the notifier's observer)."""
        assert self.influx is not None  # observing only with a writer
        a = notice.alert
        self.influx.write(
            alert_point(
                site=str(a["site_id"]),
                zone=str(a["zone"]),
                rule=str(a["rule"]),
                state=notice.state,
                at=_event_time(notice, now),
                alert_id=str(a["id"]),
                text=message.title,
                value=a.get("peak_value"),
                limit=a.get("limit"),
            )
        )

    def after_ingest(self, result: IngestResult, edge_id: str) -> None:
        """Post-commit work of one batch: notices to people, points to InfluxDB."""
        if result.notices:
            self.notifier.notify(result.notices)
        if self.influx is None or not result.new_events:
            return
        site, now = result.site_id, db.utcnow()
        points = []
        oldest: datetime | None = None
        for item in result.new_events:
            event = item.event
            if isinstance(event, SensorReading):
                low, high = reading_limits(event.quantity, result.zone_limits.get(event.zone or ""))
                points.append(reading_point(event, site=site, limit_min=low, limit_max=high))
            elif isinstance(event, DeviceHealth):
                points.append(device_health_point(event, site=site, edge=edge_id))
            at = event_moment(event)
            if at is not None and (oldest is None or at < oldest):
                oldest = at
        lag_s = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        points.append(edge_health_point(site=site, edge=edge_id, at=now, online=True, sync_lag_s=lag_s))
        points += self._limit_points(site, result.zone_limits, now)
        self.influx.write(*points)

    def _limit_points(self, site: str, limits: Mapping[str, Limits], now: datetime) -> list[Point]:
        """Zone limits for the dashboards' threshold lines: on change, else at most hourly."""
        points = []
        for zone, found in limits.items():
            written = self._limits_written.get((site, zone))
            if written is not None and written[0] == found and now - written[1] < LIMITS_REFRESH:
                continue
            self._limits_written[site, zone] = (found, now)
            points.append(
                zone_limits_point(
                    site=site,
                    zone=zone,
                    at=now,
                    min_temp_c=found.min_temp_c,
                    max_temp_c=found.max_temp_c,
                    max_humidity=found.max_humidity,
                )
            )
        return points

    # --- periodic tick ------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> list[Notice]:
        """Gap alerts and escalation as of ``now`` (no job claim: the caller decided to run it)."""
        now = db.utc(now) if now is not None else db.utcnow()
        notices = await gap_tick(self.engine, self.zones, self.rules, now)
        if self.settings.escalation_minutes is not None:
            after = timedelta(minutes=self.settings.escalation_minutes)
            notices += await escalation_tick(self.engine, after, len(self.notifier.groups), now)
        self.notifier.notify(notices)
        await self.notifier.flush(now)  # digests of what quiet hours or the rate limit held
        return notices

    async def _job_loop(self) -> None:
        job_exists = False

        async def step() -> None:
            nonlocal job_exists
            if not job_exists:
                await ensure_job(self.engine, self.tick_s)
                job_exists = True
            now = db.utcnow()
            if await claim_tick(self.engine, self.tick_s, self.options.runner, now):
                notices = await self.tick(now)
                await finish_tick(self.engine)
                if notices:
                    log.info("cold-chain tick: %d alert transitions", len(notices))

        await run_periodic("cold-chain", step, min(max(self.tick_s / 4, 0.05), 10.0), log)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("cold-chain task %s stopped by a bug", task.get_name(), exc_info=task.exception())


def runtime_of(app: FastAPI) -> ColdChainRuntime | None:
    runtime: ColdChainRuntime | None = getattr(app.state, "coldchain", None)
    return runtime


@contextlib.asynccontextmanager
async def coldchain_runtime(
    app: FastAPI,
    settings: Settings,
    engine: AsyncEngine,
    notifier: Notifier,
    options: ColdChainOptions | None = None,
) -> AsyncIterator[ColdChainRuntime]:
    """Run the cold-chain runtime for the app's lifespan (``app.state.coldchain``)."""
    runtime = ColdChainRuntime(settings, engine, notifier, options)
    runtime.start()
    app.state.coldchain = runtime
    try:
        yield runtime
    finally:
        await runtime.aclose()


__all__ = [
    "ColdChainOptions",
    "ColdChainRuntime",
    "coldchain_runtime",
    "runtime_of",
]
