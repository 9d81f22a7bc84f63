"""One restocking run: plan per site from demand and stock position, store what is new.

A run (per site, serialised: PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``) reads on hand
(present ``stock_items`` of registered items), on order (open purchase order lines), in transit
(exported transfers not yet due) and the live proposals (open or approved) inside its write
transaction, plans with :func:`cloud.replenish.proposals.plan_replenishment`, and inserts what is new.
A live proposal for the same need suppresses a new one in the planner, and the partial unique index on
``need_key`` is the last guard if two runs ever race. ``dry_run`` returns the same plan without
writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.ingest.projections import dialect_insert
from cloud.lots import service as lots
from cloud.notify.base import AlertMessage
from cloud.replenish import tables as rt
from cloud.replenish.demand import (
    SeriesForecast,
    SeriesKey,
    _day_start,
    forecast_all,
    load_demand,
    store_forecast_errors,
)
from cloud.replenish.messages import Localised, rule_notifications
from cloud.replenish.money import money
from cloud.replenish.options import ReplenishOptions
from cloud.replenish.proposals import (
    ExpiringLot,
    ExpiryProposal,
    Plan,
    PlanSettings,
    plan_expiring,
    plan_replenishment,
)
from cloud.replenish.state import _live_proposals, _site_lock, load_items
from cloud.stock import tables as stock_db
from shelfsense.config import ReplenishSettings
from shelfsense.output import progress_step

log = logging.getLogger(__name__)


def approval_steps(
    settings: ReplenishSettings, amount: float, required: Sequence[tuple[int, str]] = ()
) -> list[tuple[int, str]]:
    """The ordered approval steps: the first-level role, thresholds passed by ``amount``, rules."""
    steps = {(1, settings.approval_role)}
    steps |= {(t.level, t.role) for t in settings.approval_thresholds if amount > t.above_amount}
    steps |= set(required)
    return sorted(steps)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def plan_rows(
    site_id: str, plan: Plan, today: date, settings: ReplenishSettings, group: str
) -> list[dict[str, Any]]:
    """The proposal rows of a plan (what a run inserts and a dry run prints)."""
    rows: list[dict[str, Any]] = []
    for t in plan.transfers:
        reasoning = dict(t.reasoning, kind="transfer")
        arrival = today + timedelta(days=settings.transfer_lead_time_days)
        rows.append(
            {
                "site_id": site_id,
                "kind": "transfer",
                "need_key": f"{site_id}|transfer|{t.need_key}<{t.source}",
                "sku": t.product,
                "location_id": t.destination,
                "source_location": t.source,
                "supplier_id": None,
                "group_ref": None,
                "quantity": t.quantity,
                "unit_cost": 0.0,
                "amount": 0.0,
                "order_amount": 0.0,
                "order_by": today,
                "expected_arrival": arrival,
                "need_by": date.fromisoformat(t.reasoning["need_by"]) if "need_by" in t.reasoning else None,
                "late": False,
                "reasoning": _json_safe(reasoning),
                "approvals_required": approval_steps(settings, 0.0),
            }
        )
    currency = settings.currency
    for draft in plan.purchases:
        required = draft.decision.approvals if draft.decision is not None else ()
        steps = approval_steps(settings, draft.value, required)
        for line in draft.lines:
            order_value = money(draft.value, currency)
            reasoning = dict(
                line.reasoning, kind="purchase", supplier=draft.supplier, order_value=order_value
            )
            if draft.decision is not None:
                reasoning["rules"] = {
                    "approvals": [list(a) for a in draft.decision.approvals],
                    "notify": sorted(draft.decision.notify),
                }
            rows.append(
                {
                    "site_id": site_id,
                    "kind": "purchase",
                    "need_key": f"{site_id}|purchase|{line.need_key}",
                    "sku": line.product,
                    "location_id": line.location,
                    "source_location": None,
                    "supplier_id": draft.supplier,
                    "group_ref": f"{group}:{site_id}:{draft.supplier}",
                    "quantity": line.quantity,
                    "unit_cost": money(
                        line.value / line.quantity if line.quantity else 0.0, settings.currency
                    ),
                    "amount": money(line.value, currency),
                    "order_amount": order_value,
                    "order_by": line.order_by,
                    "expected_arrival": line.expected_arrival,
                    "need_by": line.need_by,
                    "late": line.late,
                    "reasoning": _json_safe(reasoning),
                    "approvals_required": steps,
                }
            )
    return rows


def public_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if key in ("export_claimed_at",):
            continue
        if key in ("reasoning", "approvals_required") and isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, date | datetime):
            value = value.isoformat()
        out[key] = value
    return out


def expiry_rows(
    site_id: str, suggestions: Sequence[ExpiryProposal], today: date, settings: ReplenishSettings
) -> list[dict[str, Any]]:
    """Proposal rows of expiring-stock suggestions (``transfer`` or ``markdown``)."""
    rows: list[dict[str, Any]] = []
    for x in suggestions:
        transfer = x.kind == "transfer"
        rows.append(
            {
                "site_id": site_id,
                "kind": x.kind,
                "need_key": f"{site_id}|{x.need_key}",
                "sku": x.lot.product,
                "location_id": x.destination if transfer else x.lot.location,
                "source_location": x.lot.location if transfer else None,
                "supplier_id": None,
                "group_ref": None,
                "quantity": x.quantity,
                "unit_cost": 0.0,
                "amount": 0.0,
                "order_amount": 0.0,
                "order_by": today,
                "expected_arrival": today + timedelta(days=settings.transfer_lead_time_days)
                if transfer
                else None,
                "need_by": None,
                "late": False,
                "reasoning": _json_safe(dict(x.reasoning, kind=x.kind)),
                "approvals_required": approval_steps(settings, 0.0),
            }
        )
    return rows


async def _expiring_lots(
    conn: AsyncConnection, site_id: str, today: date, within_days: float
) -> list[ExpiringLot]:
    """Lots on hand at the site whose effective expiry (cloud.lots.service) is within the window."""
    now = db.utcnow() if today == db.utcnow().date() else _day_start(today)
    found: list[ExpiringLot] = []
    for e in await lots.all_evidence(conn, site=site_id, now=now):
        effective = e.effective_expiry
        if effective is None or effective > now + timedelta(days=within_days):
            continue
        days_left = (effective - now).total_seconds() / 86400
        for (site, location), n in e.history.on_hand.items():
            if site == site_id and location is not None and n > 0:
                found.append(
                    ExpiringLot(
                        e.history.id, e.history.sku, location, float(n), days_left, effective.isoformat()
                    )
                )
    return found


async def _live_need_keys(conn: AsyncConnection, site_id: str) -> set[str]:
    p = rt.proposals
    rows = await conn.execute(
        select(p.c.need_key).where(p.c.site_id == site_id, p.c.status.in_(rt.LIVE_STATUSES))
    )
    return set(rows.scalars())


class RuleNotifier(Protocol):
    """Where rules' ``notify(channel)`` actions go: the configured channels by name (the
    notifier's, :class:`cloud.notify.notifier.Notifier`). Returns at once (queued); the names it
    does not know."""

    def submit(self, channels: Sequence[str], message: AlertMessage | Localised) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class SiteRun:
    site_id: str
    proposals: list[dict[str, Any]]  # created (or, dry run: would be created)
    suppressed: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    items: int
    notifications: list[tuple[tuple[str, ...], Localised]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "items": self.items,
            "proposals": [public_row(p) for p in self.proposals],
            "suppressed": self.suppressed,
            "alerts": self.alerts,
            "notify": [{"channels": list(c), "title": m["en"].title} for c, m in self.notifications],
        }


async def _site_ids(conn: AsyncConnection, site: str | None) -> list[str]:
    if site is not None:
        return [site]
    found = set((await conn.execute(select(stock_db.stock_items.c.site_id).distinct())).scalars())
    found |= set((await conn.execute(select(rt.replenishment_params.c.site_id).distinct())).scalars())
    found |= set((await conn.execute(select(rt.purchase_orders.c.site_id).distinct())).scalars())
    return sorted(found)


async def run_site(
    engine: AsyncEngine,
    site_id: str,
    today: date,
    forecasts: Mapping[SeriesKey, SeriesForecast],
    last_outbound: Mapping[SeriesKey, date],
    options: ReplenishOptions,
    *,
    dry_run: bool = False,
) -> SiteRun:
    """Plan one site and (unless ``dry_run``) insert the new proposals, in one write transaction."""
    s = options.settings
    plan_settings = PlanSettings(
        dead_stock_days=s.dead_stock_days,
        dead_stock_receipt_days=s.dead_stock_receipt_days,
        slow_mover_cover_days=s.slow_mover_cover_days,
    )
    ctx = engine.connect() if dry_run else db.write_transaction(engine)
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(ctx)
        if not dry_run:
            await _site_lock(conn, site_id)
        items = await load_items(conn, site_id, today, forecasts, last_outbound, s)
        live = await _live_proposals(conn, site_id)
        plan = plan_replenishment(items, today, live, plan_settings, options.rules)
        group = f"{today.isoformat()}:{options.runner}"
        rows = plan_rows(site_id, plan, today, s, group)
        if s.expiring_within_days is not None:
            demand = {(i.product, i.location): i.demand_mean for i in items}
            expiring = await _expiring_lots(conn, site_id, today, s.expiring_within_days)
            taken = await _live_need_keys(conn, site_id)
            rows += [
                r
                for r in expiry_rows(site_id, plan_expiring(expiring, demand), today, s)
                if r["need_key"] not in taken
            ]
        created = rows if dry_run else await _insert(conn, rows)
    suppressed = [
        {
            "sku": x.product,
            "location_id": x.location,
            "open_proposals": list(x.open_refs),
            "shortfall": x.shortfall,
        }
        for x in plan.suppressed
    ]
    alerts = [
        {"kind": a.kind, "sku": a.product, "location_id": a.location, **_json_safe(a.detail)}
        for a in plan.alerts
    ]
    notifications = [] if dry_run else rule_notifications(site_id, plan, created, group, s.currency)
    return SiteRun(site_id, created, suppressed, alerts, len(items), notifications)


async def _insert(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert rows; one whose need already has a live proposal is skipped (unique partial index)."""
    created = []
    now = db.utcnow()
    p = rt.proposals
    for row in rows:
        values = {
            **row,
            "reasoning": json.dumps(row["reasoning"], sort_keys=True, default=str),
            "approvals_required": json.dumps([list(step) for step in row["approvals_required"]]),
            "status": "open",
            "approved_level": 0,
            "created_at": now,
            "export_attempts": 0,
        }
        stmt = (
            dialect_insert(conn, p)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["need_key"], index_where=p.c.status.in_(rt.LIVE_STATUSES))
            .returning(p.c.id)
        )
        new_id = (await conn.execute(stmt)).scalar_one_or_none()
        if new_id is not None:
            created.append({"id": int(new_id), **values})
    return created


async def replenish(
    engine: AsyncEngine,
    options: ReplenishOptions,
    *,
    today: date | None = None,
    site: str | None = None,
    dry_run: bool = False,
    notifier: RuleNotifier | None = None,
) -> dict[str, Any]:
    """Forecast every series, store their accuracy, then plan each site; the JSON report of the run.

    Rules' ``notify`` actions are handed to ``notifier`` after each site's transaction committed."""
    today = today or db.utcnow().date()
    s = options.settings
    start = today - timedelta(days=s.history_days)
    async with engine.connect() as conn:
        sites = await _site_ids(conn, site)
        history = await load_demand(conn, sites, start, s.history_days)
    forecasts = await asyncio.to_thread(forecast_all, history, s.method)
    if not dry_run:
        await store_forecast_errors(engine, forecasts, today, s.history_days)
    runs = []
    unknown: set[str] = set()
    for site_id in sites:
        run = await run_site(
            engine, site_id, today, forecasts, history.last_outbound, options, dry_run=dry_run
        )
        runs.append(run)
        progress_step("replenish sites", len(runs), len(sites))
        for channels, message in run.notifications:
            if notifier is None:
                unknown.update(channels)
            else:
                unknown.update(notifier.submit(channels, message))
    if unknown:
        log.warning("rules notify unknown or unconfigured channels: %s", ", ".join(sorted(unknown)))
    return {
        "today": today.isoformat(),
        "dry_run": dry_run,
        "history_days": s.history_days,
        "series": len(history.keys),
        "sites": [r.to_json() for r in runs],
        "unknown_channels": sorted(unknown),
    }


__all__ = ["RuleNotifier", "approval_steps", "expiry_rows", "replenish", "rule_notifications", "run_site"]
