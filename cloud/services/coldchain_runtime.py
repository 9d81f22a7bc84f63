"""The running side of cold-chain alerting: notifications, delivery log, InfluxDB, periodic tick.

One :class:`ColdChainRuntime` lives for the app's lifespan (:func:`coldchain_runtime`). Everything
here happens *after* a commit and never blocks the caller:

- :meth:`ColdChainRuntime.notify` turns :class:`~cloud.services.coldchain.Notice` values into
  :class:`~cloud.notify.AlertMessage` values and ``submit``\\ s them to one
  :class:`~cloud.notify.AlertDispatcher` per channel (each its own bounded queue and in-flight
  slots, so a failing, retrying channel never delays the others). The audience follows the
  contact groups: a new alert goes to the first group, an escalation to the next,
  acknowledgement and resolution to every group told so far. Without groups, every channel
  hears everything.
- Delivery results go to the ``alert_deliveries`` table through a small bounded writer task.
- :meth:`ColdChainRuntime.after_ingest` also hands readings, device health and alert events to the
  :class:`~cloud.influx.InfluxWriter` when ``[cloud.influx]`` is configured; the writer flushes on
  shutdown.
- The periodic tick (gap alerts, escalation) runs on one replica at a time via the ``jobs`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from influxdb_client import Point
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.coldchain import tables as cc
from cloud.core import db
from cloud.core.config import zone_limits
from cloud.influx import (
    alert_point,
    device_health_point,
    edge_health_point,
    reading_limits,
    reading_point,
    zone_limits_point,
)
from cloud.notify import (
    AlertDispatcher,
    AlertMessage,
    Channel,
    DeliveryLog,
    DeliveryResult,
)
from cloud.notify.destinations import Destinations
from cloud.services.alert_channels import build_channel, build_influx
from cloud.services.alert_messages import alert_message
from cloud.services.alert_storm import StormGate, Transition
from cloud.services.alerts import ColdChainRules, Limits
from cloud.services.coldchain import (
    Notice,
    claim_tick,
    ensure_job,
    escalation_tick,
    finish_tick,
    gap_tick,
)
from cloud.services.ingest import IngestResult
from cloud.services.jobs import run_periodic
from shelfsense.config import (
    Settings,
)
from shelfsense.contract import DeviceHealth, SensorReading

log = logging.getLogger(__name__)

_MAX_PENDING_RESULTS = 10_000
LIMITS_REFRESH = timedelta(hours=1)
_MAX_TRACKED_DELIVERIES = 50_000


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
    """Notifications, delivery log, InfluxDB hand-off and the periodic tick of one cloud process."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, options: ColdChainOptions | None = None
    ) -> None:
        cs = settings.cloud.coldchain
        self.options = options or ColdChainOptions()
        self.engine = engine
        self.settings = cs
        self.rules = ColdChainRules.from_settings(cs)
        self.zones = zone_limits(settings)
        self.tick_s = self.options.tick_s if self.options.tick_s is not None else cs.tick_s
        allowed = Destinations.parse(cs.allowed_destinations)
        self.channels: dict[str, Channel] = {c.name: build_channel(c, allowed) for c in cs.channels}
        self.groups: list[tuple[str, ...]] = [tuple(g) for g in cs.contact_groups]
        self.languages: dict[str, str] = {c.name: c.language for c in cs.channels}
        self._languages = ("en", *sorted(set(self.languages.values()) - {"en"}))
        self.log = DeliveryLog(maxlen=1000, sink=self._on_result)
        self.influx = build_influx(settings.cloud.influx) if settings.cloud.influx is not None else None
        self.results_dropped = 0
        self._dispatchers: dict[str, AlertDispatcher] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: deque[tuple[DeliveryResult, int, str]] = deque()
        self._pending_wakeup = asyncio.Event()
        self._store_lock = asyncio.Lock()
        self._deliveries: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._job_task: asyncio.Task[None] | None = None
        self._limits_written: dict[tuple[str, str], tuple[Limits, datetime]] = {}
        self.storm = StormGate(engine, cs, self._send, self.options.clock)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.influx is not None:
            self.influx.start()
        self._spawn(self._persist_loop(), "alert-deliveries")
        if self.storm.active:
            self._spawn(self.storm.run(), "alert-storm-gate")
        if self.options.job_enabled:
            self._job_task = self._spawn(self._job_loop(), "coldchain-job")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)
        return task

    async def aclose(self) -> None:
        """Stop the tick, deliver what is queued (bounded), store the log, flush InfluxDB."""
        if self._job_task is not None:
            self._job_task.cancel()
        deadline = self.options.drain_timeout_s
        dispatchers = list(self._dispatchers.values())
        drained = True
        try:
            await asyncio.wait_for(self._drain_all(), deadline)
        except TimeoutError:
            drained = False
        for task in self._tasks:  # dispatcher loops and the log writer; deliveries in flight stay
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not drained:
            left = sum(d.pending for d in dispatchers)
            log.error("shutdown: gave up on %d alert deliveries after %.0f s", left, deadline)
            await asyncio.gather(*(d.abort() for d in dispatchers))
        with contextlib.suppress(SQLAlchemyError, DBAPIError, OSError):  # logged by _store_pending
            await self._store_pending()
        if self.influx is not None:
            await self.influx.close(timeout_s=deadline)
        for channel in self.channels.values():
            closer = getattr(channel, "aclose", None)
            if closer is not None:
                await closer()

    # --- notifications ------------------------------------------------------------------------

    def audience(self, state: str, level: int) -> tuple[str, ...]:
        if not self.groups:
            return tuple(self.channels)
        level = min(level, len(self.groups) - 1)
        if state == "raised":
            chosen: Iterable[str] = self.groups[0]
        elif state == "escalated":
            chosen = self.groups[level]
        else:
            chosen = [name for group in self.groups[: level + 1] for name in group]
        return tuple(dict.fromkeys(chosen))

    def _dispatcher(self, name: str) -> AlertDispatcher:
        """One dispatcher (queue + in-flight slots) per channel: a channel that keeps failing and
        retrying fills only its own slots and queue, never another channel's."""
        dispatcher = self._dispatchers.get(name)
        if dispatcher is None:
            dispatcher = AlertDispatcher([self.channels[name]], log=self.log)
            self._dispatchers[name] = dispatcher
            self._spawn(dispatcher.run(), f"alert-dispatch-{name}")
        return dispatcher

    def _send(self, name: str, message: AlertMessage) -> None:
        self._dispatcher(name).submit(message)

    async def _drain_all(self) -> None:
        await self.storm.drain()
        await asyncio.gather(*(d.drain() for d in list(self._dispatchers.values())))

    def notify(self, notices: Sequence[Notice]) -> None:
        """Queue messages for these transitions (returns at once) and log them to InfluxDB."""
        now = db.utcnow()
        for notice in notices:
            messages = {
                lang: alert_message(notice, at=now, url_template=self.settings.alert_url, language=lang)
                for lang in self._languages
            }
            message = messages["en"]
            if self.influx is not None:
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
            names = self.audience(notice.state, int(notice.alert.get("escalation_level") or 0))
            if not names:
                continue
            for each in messages.values():
                self._deliveries[each.delivery_id] = (int(notice.alert["id"]), notice.state)
            while len(self._deliveries) > _MAX_TRACKED_DELIVERIES:
                self._deliveries.popitem(last=False)
            chosen = {name: messages[self.languages[name]] for name in names}
            if self.storm.active:
                a = notice.alert
                raised = notice.state == "raised"
                at = self.storm.clock()
                self.storm.submit(Transition(str(a["site_id"]), str(a["zone"]), raised, chosen, at))
                continue
            for name, each in chosen.items():
                self._send(name, each)

    def submit(
        self, channels: Sequence[str], message: AlertMessage | Mapping[str, AlertMessage]
    ) -> list[str]:
        """Queue ``message`` on the named channels (rules' ``notify`` actions, not an alert
        transition: no delivery log row); returns the names no channel is configured for. Given
        one message per language, each channel gets its own language's (else the English one)."""
        for name in dict.fromkeys(channels):
            if name in self.channels:
                self._dispatcher(name).submit(self._in_language(message, name))
        return [name for name in channels if name not in self.channels]

    def _in_language(self, message: AlertMessage | Mapping[str, AlertMessage], channel: str) -> AlertMessage:
        if isinstance(message, AlertMessage):
            return message
        return message.get(self.languages[channel]) or message["en"]

    def after_ingest(self, result: IngestResult, edge_id: str) -> None:
        """Post-commit work of one batch: notices to people, points to InfluxDB."""
        if result.notices:
            self.notify(result.notices)
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

    # --- delivery log -------------------------------------------------------------------------

    def _on_result(self, result: DeliveryResult) -> None:
        origin = self._deliveries.get(result.delivery_id)
        if origin is None:
            return
        if len(self._pending) >= _MAX_PENDING_RESULTS:
            self._pending.popleft()
            self.results_dropped += 1
        self._pending.append((result, *origin))
        self._pending_wakeup.set()

    async def _store_pending(self) -> None:
        # One store at a time: a caller waiting for the log (wait_delivered) also waits for the
        # background writer's insert in flight.
        async with self._store_lock:
            await self._store_pending_locked()

    async def _store_pending_locked(self) -> None:
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        rows = [
            {
                "alert_id": alert_id,
                "delivery_id": r.delivery_id,
                "event": event,
                "channel": r.channel,
                "ok": r.ok,
                "attempts": r.attempts,
                "status": r.status,
                "error": r.error,
                "elapsed_ms": r.elapsed_s * 1000,
                "at": r.at,
            }
            for r, alert_id, event in batch
        ]
        try:
            async with db.write_transaction(self.engine) as conn:
                await conn.execute(cc.alert_deliveries.insert(), rows)
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            log.warning(
                "delivery log not stored (%s): %d results kept for a retry", type(exc).__name__, len(rows)
            )
            self._pending.extendleft(reversed(batch))
            raise

    async def _persist_loop(self) -> None:
        while True:
            await self._pending_wakeup.wait()
            self._pending_wakeup.clear()
            try:
                await self._store_pending()
            except (SQLAlchemyError, DBAPIError, OSError):
                await asyncio.sleep(1.0)
                self._pending_wakeup.set()

    async def wait_delivered(self) -> None:
        """Until every queued message is delivered and its results stored (tests, benches)."""
        await self._drain_all()
        await self._store_pending()

    # --- periodic tick ------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> list[Notice]:
        """Gap alerts and escalation as of ``now`` (no job claim: the caller decided to run it)."""
        now = db.utc(now) if now is not None else db.utcnow()
        notices = await gap_tick(self.engine, self.zones, self.rules, now)
        if self.settings.escalation_minutes is not None:
            after = timedelta(minutes=self.settings.escalation_minutes)
            notices += await escalation_tick(self.engine, after, len(self.groups), now)
        self.notify(notices)
        await self.storm.drain()  # transitions still queued for the gate count first
        await self.storm.flush(now)  # digests of what quiet hours or the rate limit held
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
    app: FastAPI, settings: Settings, engine: AsyncEngine, options: ColdChainOptions | None = None
) -> AsyncIterator[ColdChainRuntime]:
    """Run the cold-chain runtime for the app's lifespan (``app.state.coldchain``)."""
    runtime = ColdChainRuntime(settings, engine, options)
    runtime.start()
    app.state.coldchain = runtime
    try:
        yield runtime
    finally:
        await runtime.aclose()


__all__ = [
    "ColdChainOptions",
    "ColdChainRuntime",
    "alert_message",
    "build_channel",
    "build_influx",
    "coldchain_runtime",
    "runtime_of",
]
