"""The restocking run against the database: demand, forecasts, proposals, approvals, export, job.

Demand is read from the movement ledger: per product (the item's SKU) and location, the units that
*left* the location to outside the site or to a dock (shipping), with reason ``portal`` or
``manual``. Receipts, moves between storage locations, stocktake corrections and write-offs
(``adjustment``) are not demand; nor is the hop from a dock to outside, which would count a shipment
twice. Daily series of all products and locations are forecast in one vectorised call.

A run (per site, serialised: PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``) reads on hand
(present ``stock_items`` of registered items), on order (open purchase order lines), in transit
(exported transfers not yet due) and the live proposals (open or approved) inside its write
transaction, plans with :func:`cloud.replenish.proposals.plan_replenishment`, and inserts what is new.
A live proposal for the same need suppresses a new one in the planner, and the partial unique index on
``need_key`` is the last guard if two runs ever race. ``dry_run`` returns the same plan without
writing.

Approval is a sequence of steps ``(level, role)``: the configured first step, the amount thresholds
of the order (a purchase draft's total) and the rules' ``require_approval`` actions. Each step is
filled by a different person (four eyes). A fully approved proposal is exported: POSTed to the
signed webhook by the job, or fetched as CSV/JSON; on export a purchase becomes an open purchase
order (``SS-<id>``), so its quantity keeps counting as on order and is never proposed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db, jobs
from cloud.core.errors import CloudError
from cloud.core.security import Role
from cloud.ingest.projections import dialect_insert
from cloud.lots import service as lots
from cloud.masterdata import tables as masterdata_db
from cloud.notify.base import AlertMessage, DeliveryResult
from cloud.replenish import tables as rt
from cloud.replenish.forecast import forecast
from cloud.replenish.money import money
from cloud.replenish.policy import ALL_WEEKDAYS
from cloud.replenish.proposals import (
    ExpiringLot,
    ExpiryProposal,
    ItemState,
    OpenProposal,
    Plan,
    PlanSettings,
    plan_expiring,
    plan_replenishment,
)
from cloud.replenish.rules import RuleSet, load_rules_file
from cloud.stock import tables as stock_db
from cloud.stocktake.service import default_runner_id
from shelfsense.config import ReplenishSettings
from shelfsense.output import progress_step

log = logging.getLogger(__name__)

JOB_NAME = "replenish"
DEMAND_REASONS = ("portal", "manual")
EXPORT_CLAIM_TTL = timedelta(minutes=5)
MAX_EXPORT_BATCH = 100


class ReplenishServiceError(CloudError):
    """Base of the errors the API maps to responses."""


class ProposalNotFound(ReplenishServiceError):
    """No proposal with that id."""


class ProposalConflict(ReplenishServiceError):
    """The proposal is not in a state that allows this (already decided, not approved, ...)."""


class ApprovalForbidden(ReplenishServiceError):
    """The user cannot fill the approval step the proposal is waiting for."""


@dataclass(frozen=True, slots=True)
class Approver:
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class ReplenishOptions:
    """The run's settings plus what the process adds (runner id, loaded rules)."""

    settings: ReplenishSettings = field(default_factory=ReplenishSettings)
    runner: str = field(default_factory=default_runner_id)
    rules: RuleSet | None = None

    @classmethod
    def from_settings(cls, settings: ReplenishSettings) -> ReplenishOptions:
        rules = load_rules_file(settings.rules_file) if settings.rules_file else None
        return cls(settings=settings, rules=rules)


# --- demand and forecasts ---------------------------------------------------------------------------

SeriesKey = tuple[str, str, str]  # site, location, sku


@dataclass(frozen=True, slots=True)
class DemandHistory:
    """Daily outbound units per (site, location, sku) over ``[start, start + days)``."""

    start: date
    keys: list[SeriesKey]
    matrix: np.ndarray  # (series, days)
    last_outbound: dict[SeriesKey, date]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def outbound_query(site_ids: Sequence[str] | None, since: datetime, until: datetime) -> Any:
    """Outbound movements with their SKU: ``(site_id, location, sku, at)``."""
    m, items = stock_db.stock_movements, masterdata_db.items
    dest, src = masterdata_db.locations.alias("dest"), masterdata_db.locations.alias("src")
    query = (
        select(m.c.site_id, m.c.from_location, items.c.sku, m.c.at)
        .select_from(
            m.join(items, items.c.epc == m.c.epc)
            .outerjoin(dest, and_(dest.c.site_id == m.c.site_id, dest.c.location_id == m.c.to_location))
            .outerjoin(src, and_(src.c.site_id == m.c.site_id, src.c.location_id == m.c.from_location))
        )
        .where(
            m.c.from_location.is_not(None),
            m.c.reason.in_(DEMAND_REASONS),
            or_(m.c.to_location.is_(None), dest.c.kind == "dock"),
            or_(src.c.kind.is_(None), src.c.kind != "dock"),
            m.c.at >= since,
            m.c.at < until,
        )
    )
    if site_ids is not None:
        query = query.where(m.c.site_id.in_(list(site_ids)))
    return query


async def load_demand(
    conn: AsyncConnection, site_ids: Sequence[str] | None, start: date, days: int
) -> DemandHistory:
    """Daily outbound units of every series with demand in the window (UTC days)."""
    rows = (
        await conn.execute(outbound_query(site_ids, _day_start(start), _day_start(start) + timedelta(days)))
    ).all()
    index: dict[SeriesKey, int] = {}
    cells: list[tuple[int, int]] = []
    last: dict[SeriesKey, date] = {}
    for site, location, sku, at in rows:
        key = (site, location, sku)
        day = db.utc(at).date()
        cells.append((index.setdefault(key, len(index)), (day - start).days))
        if key not in last or day > last[key]:
            last[key] = day
    imported = await _imported_demand(conn, site_ids, start, days)
    for key, _, _ in imported:
        index.setdefault(key, len(index))
    matrix = np.zeros((len(index), days))
    if cells:
        rows_idx, cols = np.array(cells).T
        np.add.at(matrix, (rows_idx, cols), 1.0)
    for key, day, quantity in imported:  # an imported day replaces what the tags counted that day
        matrix[index[key], (day - start).days] = quantity
        if quantity > 0 and (key not in last or day > last[key]):
            last[key] = day
    return DemandHistory(start, list(index), matrix, last)


async def _imported_demand(
    conn: AsyncConnection, site_ids: Sequence[str] | None, start: date, days: int
) -> list[tuple[SeriesKey, date, float]]:
    """Imported demand (``cloud import --kind demand``) of the window's days."""
    d = rt.demand_history
    query = select(d.c.site_id, d.c.location_id, d.c.sku, d.c.day, d.c.quantity).where(
        d.c.day >= start, d.c.day < start + timedelta(days=days)
    )
    if site_ids is not None:
        query = query.where(d.c.site_id.in_(list(site_ids)))
    rows = (await conn.execute(query)).all()
    return [((site, location, sku), day, float(quantity)) for site, location, sku, day, quantity in rows]


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    mean: float  # units per day
    std: float
    method: str
    mae: float | None
    bias: float | None
    mase: float | None = None
    demand_class: str = ""


def _finite(value: Any) -> float | None:
    return float(value) if np.isfinite(value) else None


def forecast_all(history: DemandHistory, method: str = "auto") -> dict[SeriesKey, SeriesForecast]:
    """One vectorised forecast over every series; sigma estimated as 1.25 x MAE (normal errors)."""
    if not history.keys:
        return {}
    result = forecast(history.matrix, method, horizon=1)
    out: dict[SeriesKey, SeriesForecast] = {}
    for i, key in enumerate(history.keys):
        mae, bias, mase = _finite(result.mae[i]), _finite(result.bias[i]), _finite(result.mase[i])
        mean = max(0.0, float(result.forecast[i, 0]))
        std = 1.25 * mae if mae is not None else float(history.matrix[i].std())
        demand_class = str(result.demand_class[i]) if len(result.demand_class) > i else ""
        out[key] = SeriesForecast(mean, std, str(result.method[i]), mae, bias, mase, demand_class)
    return out


async def store_forecast_errors(
    engine: AsyncEngine, forecasts: Mapping[SeriesKey, SeriesForecast], today: date, history_days: int
) -> int:
    """Upsert each series' accuracy for ``today`` (one row per series and day); rows written."""
    if not forecasts:
        return 0
    t = rt.forecast_errors
    now = db.utcnow()
    rows = [
        {
            "site_id": site,
            "location_id": location,
            "sku": sku,
            "run_date": today,
            "method": fc.method,
            "demand_class": fc.demand_class,
            "mae": fc.mae,
            "bias": fc.bias,
            "mase": fc.mase,
            "forecast": fc.mean,
            "history_days": history_days,
            "computed_at": now,
        }
        for (site, location, sku), fc in sorted(forecasts.items())
    ]
    updated = ("method", "demand_class", "mae", "bias", "mase", "forecast", "history_days", "computed_at")
    async with db.write_transaction(engine) as conn:
        for start in range(0, len(rows), 500):  # bounded statements (bind parameter limits)
            stmt = dialect_insert(conn, t).values(rows[start : start + 500])
            stmt = stmt.on_conflict_do_update(
                index_elements=["site_id", "location_id", "sku", "run_date"],
                set_={name: getattr(stmt.excluded, name) for name in updated},
            )
            await conn.execute(stmt)
    return len(rows)


def forecasts_query(site: str | None, product: str | None, location: str | None) -> Any:
    """Stored forecast accuracy, newest run first."""
    t = rt.forecast_errors
    query = select(t).order_by(t.c.run_date.desc(), t.c.site_id, t.c.location_id, t.c.sku)
    if site is not None:
        query = query.where(t.c.site_id == site)
    if product is not None:
        query = query.where(t.c.sku == product)
    if location is not None:
        query = query.where(t.c.location_id == location)
    return query


# --- state ------------------------------------------------------------------------------------------


async def _site_lock(conn: AsyncConnection, site_id: str) -> None:
    if conn.dialect.name == "postgresql":
        key = 0x5250_0000_0000 + zlib.crc32(site_id.encode())  # "RP" + site hash
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _on_hand(conn: AsyncConnection, site_id: str) -> dict[tuple[str, str], float]:
    s, items = stock_db.stock_items, masterdata_db.items
    rows = await conn.execute(
        select(s.c.location, items.c.sku, func.count())
        .select_from(s.join(items, items.c.epc == s.c.epc))
        .where(s.c.site_id == site_id, s.c.present.is_(True), s.c.location.is_not(None))
        .group_by(s.c.location, items.c.sku)
    )
    return {(loc, sku): float(n) for loc, sku, n in rows}


async def _on_order(conn: AsyncConnection, site_id: str) -> dict[tuple[str, str], float]:
    po, lines = rt.purchase_orders, rt.purchase_order_lines
    rows = await conn.execute(
        select(lines.c.location_id, lines.c.sku, func.sum(lines.c.quantity - lines.c.received_quantity))
        .select_from(lines.join(po, po.c.id == lines.c.po_id))
        .where(po.c.site_id == site_id, po.c.status == "open")
        .group_by(lines.c.location_id, lines.c.sku)
    )
    return {(loc, sku): max(0.0, float(q or 0)) for loc, sku, q in rows}


async def _in_transit(conn: AsyncConnection, site_id: str, today: date) -> dict[tuple[str, str], float]:
    """Exported transfers count as in transit until their expected arrival day has passed."""
    p = rt.proposals
    rows = await conn.execute(
        select(p.c.location_id, p.c.sku, func.sum(p.c.quantity))
        .where(
            p.c.site_id == site_id,
            p.c.kind == "transfer",
            p.c.status == "exported",
            p.c.expected_arrival >= today,
        )
        .group_by(p.c.location_id, p.c.sku)
    )
    return {(loc, sku): float(q or 0) for loc, sku, q in rows}


def _expiry_need_prefix(site_id: str) -> str:
    return f"{site_id}|expiry:"


async def _live_proposals(conn: AsyncConnection, site_id: str) -> list[OpenProposal]:
    """Live replenishment proposals. Expiring-stock suggestions are another need: they must not
    suppress the destination's own replenishment (an exported transfer counts as in transit)."""
    p = rt.proposals
    rows = await conn.execute(
        select(p.c.id, p.c.sku, p.c.location_id, p.c.quantity).where(
            p.c.site_id == site_id,
            p.c.status.in_(rt.LIVE_STATUSES),
            ~p.c.need_key.startswith(_expiry_need_prefix(site_id), autoescape=True),
        )
    )
    return [OpenProposal(str(i), sku, loc, float(q)) for i, sku, loc, q in rows]


@dataclass(frozen=True, slots=True)
class _Supply:
    supplier_id: str
    pack_size: float
    unit_cost: float
    moq: float
    lead_time_days: float
    lead_time_std_days: float
    order_weekdays: frozenset[int]
    order_cost: float | None


async def _supplies(conn: AsyncConnection) -> dict[tuple[str, str], _Supply]:
    """Every (sku, supplier) offer with the supplier's defaults applied."""
    ps, s = rt.product_suppliers, rt.suppliers
    query = select(
        ps.c.sku,
        ps.c.supplier_id,
        ps.c.pack_size,
        ps.c.unit_cost,
        func.coalesce(ps.c.moq, s.c.moq).label("moq"),
        func.coalesce(ps.c.lead_time_days, s.c.lead_time_days).label("lead_time_days"),
        s.c.lead_time_std_days,
        s.c.order_weekdays,
        s.c.order_cost,
    ).select_from(ps.join(s, s.c.supplier_id == ps.c.supplier_id))
    out: dict[tuple[str, str], _Supply] = {}
    for r in await conn.execute(query):
        weekdays = frozenset(int(d) for d in str(r.order_weekdays).split(",") if d.strip()) or ALL_WEEKDAYS
        out[(r.sku, r.supplier_id)] = _Supply(
            supplier_id=r.supplier_id,
            pack_size=float(r.pack_size),
            unit_cost=float(r.unit_cost),
            moq=float(r.moq),
            lead_time_days=float(r.lead_time_days),
            lead_time_std_days=float(r.lead_time_std_days),
            order_weekdays=weekdays,
            order_cost=r.order_cost,
        )
    return out


async def _preferred(conn: AsyncConnection) -> dict[str, str]:
    """Per SKU its preferred supplier, else the cheapest (then by id, for a stable choice)."""
    ps = rt.product_suppliers
    rows = await conn.execute(
        select(ps.c.sku, ps.c.supplier_id).order_by(
            ps.c.sku, ps.c.preferred.desc(), ps.c.unit_cost, ps.c.supplier_id
        )
    )
    chosen: dict[str, str] = {}
    for sku, supplier in rows:
        chosen.setdefault(sku, supplier)
    return chosen


async def _params(conn: AsyncConnection, site_id: str) -> dict[tuple[str, str], Any]:
    t = rt.replenishment_params
    rows = await conn.execute(select(t).where(t.c.site_id == site_id))
    return {(r.location_id, r.sku): r for r in rows}


async def _docks(conn: AsyncConnection, site_id: str) -> set[str]:
    t = masterdata_db.locations
    rows = await conn.execute(select(t.c.location_id).where(t.c.site_id == site_id, t.c.kind == "dock"))
    return set(rows.scalars())


async def load_items(
    conn: AsyncConnection,
    site_id: str,
    today: date,
    forecasts: Mapping[SeriesKey, SeriesForecast],
    last_outbound: Mapping[SeriesKey, date],
    settings: ReplenishSettings,
) -> list[ItemState]:
    """One :class:`ItemState` per product and storage location with stock, demand or parameters."""
    on_hand = await _on_hand(conn, site_id)
    on_order = await _on_order(conn, site_id)
    in_transit = await _in_transit(conn, site_id, today)
    params = await _params(conn, site_id)
    supplies = await _supplies(conn)
    preferred = await _preferred(conn)
    docks = await _docks(conn, site_id)
    keys = set(on_hand) | set(on_order) | {(loc, sku) for s, loc, sku in forecasts if s == site_id}
    keys |= {k for k, p in params.items() if p.enabled}
    items: list[ItemState] = []
    for location, sku in sorted(keys):
        p = params.get((location, sku))
        if location in docks or (p is not None and not p.enabled):
            continue
        fc = forecasts.get((site_id, location, sku))
        supplier_id = (p.supplier_id if p is not None else None) or preferred.get(sku)
        supply = supplies.get((sku, supplier_id)) if supplier_id else None
        items.append(
            ItemState(
                product=sku,
                location=location,
                on_hand=on_hand.get((location, sku), 0.0),
                demand_mean=fc.mean if fc else 0.0,
                demand_std=fc.std if fc else 0.0,
                on_order=on_order.get((location, sku), 0.0),
                in_transit=in_transit.get((location, sku), 0.0),
                reserved=float(p.reserved) if p is not None else 0.0,
                supplier=supply.supplier_id if supply else None,
                lead_time_days=math.ceil(supply.lead_time_days - 1e-9) if supply else 0,
                lead_time_std_days=supply.lead_time_std_days if supply else 0.0,
                transfer_lead_time_days=settings.transfer_lead_time_days,
                unit_cost=supply.unit_cost if supply else 0.0,
                pack_size=supply.pack_size if supply else 1.0,
                moq=supply.moq if supply else 0.0,
                service_level=(
                    p.service_level if p is not None and p.service_level else settings.service_level
                ),
                review_period_days=(
                    p.review_period_days
                    if p is not None and p.review_period_days
                    else settings.review_period_days
                ),
                order_cost=supply.order_cost if supply else None,
                holding_cost_per_unit_year=p.holding_cost_per_unit_year if p is not None else None,
                order_weekdays=supply.order_weekdays if supply else ALL_WEEKDAYS,
                last_outbound=last_outbound.get((site_id, location, sku)),
                forecast_method=fc.method if fc else "",
                min_qty=p.min_qty if p is not None else None,
                max_qty=p.max_qty if p is not None else None,
            )
        )
    return items


# --- proposals --------------------------------------------------------------------------------------


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

    def submit(self, channels: Sequence[str], message: AlertMessage) -> list[str]: ...


def rule_notifications(
    site_id: str, plan: Plan, created: Sequence[Mapping[str, Any]], group: str
) -> list[tuple[tuple[str, ...], AlertMessage]]:
    """One message per purchase draft whose rules say ``notify``, about the lines actually created."""
    out: list[tuple[tuple[str, ...], AlertMessage]] = []
    for draft in plan.purchases:
        if draft.decision is None or not draft.decision.notify:
            continue
        ref = f"{group}:{site_id}:{draft.supplier}"
        lines = [r for r in created if r["kind"] == "purchase" and r["group_ref"] == ref]
        if not lines:
            continue  # another run created them first: it told people
        ids = sorted(int(r["id"]) for r in lines)
        rules = sorted({rule for names in draft.decision.notify.values() for rule in names})
        text = "; ".join(f"#{r['id']}: {r['quantity']:g} x {r['sku']} to {r['location_id']}" for r in lines)
        message = AlertMessage(
            alert_id=f"proposals-{ids[0]}",
            site_id=site_id,
            kind="purchase_proposal",
            state="proposed",
            title=f"Purchase draft, supplier {draft.supplier} ({draft.value:g}): rules {', '.join(rules)}",
            text=text,
            at=db.utcnow(),
            severity="info",
            delivery_id=f"proposals-{'-'.join(map(str, ids))}"[:200],  # stable across retries
        )
        out.append((tuple(sorted(draft.decision.notify)), message))
    return out


@dataclass(frozen=True, slots=True)
class SiteRun:
    site_id: str
    proposals: list[dict[str, Any]]  # created (or, dry run: would be created)
    suppressed: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    items: int
    notifications: list[tuple[tuple[str, ...], AlertMessage]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "items": self.items,
            "proposals": [public_row(p) for p in self.proposals],
            "suppressed": self.suppressed,
            "alerts": self.alerts,
            "notify": [{"channels": list(c), "title": m.title} for c, m in self.notifications],
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
        dead_stock_days=s.dead_stock_days, slow_mover_cover_days=s.slow_mover_cover_days
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
    notifications = [] if dry_run else rule_notifications(site_id, plan, created, group)
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


# --- reads ------------------------------------------------------------------------------------------


async def get_proposal(conn: AsyncConnection, proposal_id: int) -> dict[str, Any]:
    p = rt.proposals
    row = (await conn.execute(select(p).where(p.c.id == proposal_id))).mappings().one_or_none()
    if row is None:
        raise ProposalNotFound(f"no proposal {proposal_id}")
    out = public_row(row)
    a = rt.approvals
    history = await conn.execute(select(a).where(a.c.proposal_id == proposal_id).order_by(a.c.id))
    out["approvals"] = [public_row(r) for r in history.mappings()]
    return out


def proposals_query(status: str | None, site: str | None) -> Any:
    p = rt.proposals
    query = select(p).order_by(p.c.id.desc())
    if status is not None and status != "all":
        query = query.where(p.c.status == status)
    if site is not None:
        query = query.where(p.c.site_id == site)
    return query


# --- approvals --------------------------------------------------------------------------------------


def can_fill(user: Approver, role: str, approvers: Mapping[str, Sequence[str]]) -> bool:
    """API roles by rank (an admin fills every step); other roles by the configured user lists."""
    if user.role >= Role.admin:
        return True
    if role in Role.__members__:
        return user.role >= Role[role]
    return user.name in approvers.get(role, ())


async def decide(
    engine: AsyncEngine,
    proposal_id: int,
    decision: str,
    user: Approver,
    comment: str,
    settings: ReplenishSettings,
) -> dict[str, Any]:
    """Approve the next step (or reject) an open proposal; returns the updated proposal."""
    if decision not in ("approve", "reject"):
        raise ValueError(f"unknown decision {decision!r}")
    p, a = rt.proposals, rt.approvals
    async with db.write_transaction(engine) as conn:
        row = (
            (await conn.execute(select(p).where(p.c.id == proposal_id).with_for_update()))
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise ProposalNotFound(f"no proposal {proposal_id}")
        if row["status"] != "open":
            raise ProposalConflict(f"proposal {proposal_id} is {row['status']}, not open")
        steps = [tuple(s) for s in json.loads(row["approvals_required"])]
        done = int(row["approved_level"])
        level, role = steps[done]
        if not can_fill(user, str(role), settings.approvers):
            raise ApprovalForbidden(
                f"step {done + 1} of proposal {proposal_id} needs the {role} approver (level {level})"
            )
        earlier = await conn.scalar(
            select(func.count()).where(a.c.proposal_id == proposal_id, a.c.user_name == user.name)
        )
        if decision == "approve" and earlier:
            raise ApprovalForbidden(
                f"{user.name} already approved a step of proposal {proposal_id} (four eyes)"
            )
        now = db.utcnow()
        await conn.execute(
            a.insert().values(
                proposal_id=proposal_id,
                level=int(level),
                role=str(role),
                decision=decision,
                user_name=user.name,
                comment=comment,
                at=now,
            )
        )
        values: dict[str, Any] = {}
        if decision == "reject":
            values = {"status": "rejected", "decided_at": now}
        else:
            values = {"approved_level": done + 1}
            if done + 1 == len(steps):
                values |= {"status": "approved", "decided_at": now}
        await conn.execute(update(p).where(p.c.id == proposal_id).values(**values))
        return await get_proposal(conn, proposal_id)


# --- export -----------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "po_number",
    "kind",
    "status",
    "site_id",
    "sku",
    "location_id",
    "source_location",
    "supplier_id",
    "group_ref",
    "quantity",
    "unit_cost",
    "amount",
    "order_amount",
    "order_by",
    "expected_arrival",
    "need_by",
    "late",
    "decided_at",
    "exported_at",
)


def po_number(proposal_id: int) -> str:
    return f"SS-{proposal_id}"


def export_record(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The ERP-facing shape of a proposal (CSV columns, JSON object, webhook payload)."""
    public = public_row(row)
    record = {c: public.get(c) for c in EXPORT_COLUMNS}
    record["po_number"] = po_number(int(row["id"])) if row["kind"] == "purchase" else None
    record["reasoning"] = public.get("reasoning")
    return record


async def export_rows(
    conn: AsyncConnection, status: str = "approved", site: str | None = None
) -> list[dict[str, Any]]:
    p = rt.proposals
    query = select(p).order_by(p.c.id)
    if status == "all":
        query = query.where(p.c.status.in_(("approved", "exported")))
    else:
        query = query.where(p.c.status == status)
    if site is not None:
        query = query.where(p.c.site_id == site)
    return [export_record(r) for r in (await conn.execute(query)).mappings()]


async def mark_exported(conn: AsyncConnection, proposal_ids: Sequence[int]) -> list[int]:
    """Approved -> exported; a purchase becomes an open purchase order in the same transaction."""
    p = rt.proposals
    rows = (
        (
            await conn.execute(
                select(p).where(p.c.id.in_(list(proposal_ids)), p.c.status == "approved").with_for_update()
            )
        )
        .mappings()
        .all()
    )
    now = db.utcnow()
    for row in rows:
        if row["kind"] == "purchase":
            await _purchase_order_from(conn, row, now)
    done = [int(r["id"]) for r in rows]
    if done:
        await conn.execute(
            update(p)
            .where(p.c.id.in_(done))
            .values(status="exported", exported_at=now, export_claimed_at=None, export_error=None)
        )
    return done


async def _purchase_order_from(conn: AsyncConnection, row: Mapping[Any, Any], now: datetime) -> None:
    po, lines = rt.purchase_orders, rt.purchase_order_lines
    number = po_number(int(row["id"]))
    if await conn.scalar(select(po.c.id).where(po.c.po_number == number)) is not None:
        return  # the ERP already sent it back
    po_id = (
        await conn.execute(
            po.insert()
            .values(
                po_number=number,
                supplier_id=row["supplier_id"],
                site_id=row["site_id"],
                status="open",
                ordered_at=row["order_by"],
                expected_date=row["expected_arrival"] or row["order_by"],
                source="proposal",
                updated_at=now,
            )
            .returning(po.c.id)
        )
    ).scalar_one()
    await conn.execute(
        lines.insert().values(
            po_id=po_id,
            line_no=1,
            sku=row["sku"],
            location_id=row["location_id"],
            quantity=row["quantity"],
            received_quantity=0.0,
            unit_cost=row["unit_cost"],
        )
    )


@dataclass(frozen=True, slots=True)
class ProposalMessage(AlertMessage):
    """An approved proposal as a :class:`cloud.notify` message: the webhook POSTs ``payload``."""

    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": "replenishment_proposal", "delivery_id": self.delivery_id, "proposal": self.payload}


class ExportSender(Protocol):
    async def send(self, alert: AlertMessage) -> DeliveryResult: ...


def proposal_message(record: Mapping[str, Any]) -> ProposalMessage:
    return ProposalMessage(
        alert_id=f"proposal-{record['id']}",
        site_id=str(record["site_id"]),
        kind=f"{record['kind']}_proposal",
        state="approved",
        title=f"{record['kind']} proposal {record['id']}",
        text=f"{record['quantity']:g} x {record['sku']} to {record['location_id']}",
        at=db.utcnow(),
        severity="info",
        # The same on every attempt and every replica: receivers de-duplicate on it.
        delivery_id=f"proposal-{record['id']}",
        payload=dict(record),
    )


async def _claim_exports(engine: AsyncEngine, now: datetime) -> list[dict[str, Any]]:
    p = rt.proposals
    async with db.write_transaction(engine) as conn:
        rows = (
            (
                await conn.execute(
                    select(p)
                    .where(
                        p.c.status == "approved",
                        or_(p.c.export_claimed_at.is_(None), p.c.export_claimed_at < now - EXPORT_CLAIM_TTL),
                    )
                    .order_by(p.c.id)
                    .limit(MAX_EXPORT_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            .mappings()
            .all()
        )
        if rows:
            await conn.execute(
                update(p)
                .where(p.c.id.in_([r["id"] for r in rows]))
                .values(export_claimed_at=now, export_attempts=p.c.export_attempts + 1)
            )
    return [export_record(r) for r in rows]


async def export_approved(engine: AsyncEngine, sender: ExportSender) -> tuple[int, int]:
    """Deliver every approved, unclaimed proposal through ``sender``; returns (exported, failed)."""
    claimed = await _claim_exports(engine, db.utcnow())
    ok: list[int] = []
    failed: dict[int, str] = {}
    for record in claimed:
        result = await sender.send(proposal_message(record))
        if result.ok:
            ok.append(int(record["id"]))
        else:
            failed[int(record["id"])] = (result.error or "failed")[:500]
    p = rt.proposals
    async with db.write_transaction(engine) as conn:
        await mark_exported(conn, ok)
        for ident, error in failed.items():
            # Released at once: the next poll retries (the channel itself already backed off).
            await conn.execute(
                update(p).where(p.c.id == ident).values(export_claimed_at=None, export_error=error)
            )
    return len(ok), len(failed)


# --- the shared periodic job -----------------------------------------------------------------------


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
            exported, failed = await export_approved(engine, sender)
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


__all__ = [
    "JOB_NAME",
    "ApprovalForbidden",
    "Approver",
    "ProposalConflict",
    "ProposalMessage",
    "ProposalNotFound",
    "ReplenishOptions",
    "RuleNotifier",
    "approval_steps",
    "background_job",
    "can_fill",
    "claim_tick",
    "decide",
    "expiry_rows",
    "export_approved",
    "export_rows",
    "forecast_all",
    "forecasts_query",
    "get_proposal",
    "job_tick",
    "load_demand",
    "load_items",
    "mark_exported",
    "outbound_query",
    "replenish",
    "replenish_sync",
    "rule_notifications",
    "run_site",
    "store_forecast_errors",
]
