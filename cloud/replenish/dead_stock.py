"""Dead stock: lots on hand that nobody has taken out for a long time, as a list and as alerts.

A lot at a location is *dead* when both ages pass their configured thresholds
(:class:`DeadStockRule`, ``[cloud.replenish] dead_stock_receipt_days`` and ``dead_stock_days``):

- **since receipt**: the latest arrival at the site of any of its units on hand there (a movement
  from outside the site or from a dock). Goods received recently are never dead, however long the
  lot has not shipped: the freshest unit protects the lot, so a delivery that tops up an old lot
  makes it live again.
- **since the last outbound**: the latest unit of the same lot that left the location as demand
  (the restocking demand's definition: shipped out of the site or to a dock). A lot never shipped
  from there counts from its receipt.

The list (:func:`dead_stock`) answers the page and ``GET /api/v1/dead-stock``; the periodic check
(:func:`check_dead_stock`) opens one ``dead_stock`` alert per lot and location, resolves it when the
lot ships or leaves, and hands the opened ones to the cold-chain runtime, which delivers them like
every other alert (channels, contact groups, storm control, the recipients' language).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.alerts import tables as alerts_db
from cloud.coldchain.service import Notice
from cloud.core import db, jobs
from cloud.ingest.projections import dialect_insert
from cloud.lots.expiry import AlertNotifier
from cloud.masterdata import tables as masterdata_db
from cloud.replenish import tables as rt
from cloud.replenish.money import money
from cloud.replenish.policy import DeadStockRule
from cloud.stock import tables as stock_db
from shelfsense.config import ReplenishSettings, Settings

log = logging.getLogger(__name__)

KIND = "dead_stock"
JOB_NAME = "dead_stock"
ACTIVE = ("open", "acknowledged")
SYSTEM = "system"
OUTBOUND_REASONS = ("portal", "manual")  # as the restocking demand (cloud.replenish.service)
RESOLVED_REASON = "lot shipped, left the location or was received again"
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class DeadLot:
    """One lot of one product at one location, with its ages (days) and value."""

    site_id: str
    location: str
    sku: str
    name: str
    lot_code: str | None
    quantity: int
    received_at: datetime
    last_outbound_at: datetime | None
    days_since_receipt: float
    days_since_outbound: float | None  # None: never shipped from this location
    unit_cost: float | None
    value: float | None  # quantity x unit cost, in the currency's precision; None without a cost

    @property
    def rule(self) -> str:
        """``dead_stock:<digest of product and lot>``: one active alert per lot and location."""
        key = f"{self.sku}\x00{self.lot_code or ''}"
        return f"{KIND}:{hashlib.sha256(key.encode()).hexdigest()[: 32 - len(KIND) - 1]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "location": self.location,
            "sku": self.sku,
            "name": self.name,
            "lot_code": self.lot_code,
            "quantity": self.quantity,
            "received_at": self.received_at,
            "last_outbound_at": self.last_outbound_at,
            "days_since_receipt": round(self.days_since_receipt, 1),
            "days_since_outbound": None
            if self.days_since_outbound is None
            else round(self.days_since_outbound, 1),
            "unit_cost": self.unit_cost,
            "value": self.value,
        }


# --- reading the ledger ---------------------------------------------------------------------------


def _receipts(site: str | None) -> Any:
    """Per (site, epc) its latest arrival from outside the site or from a dock."""
    m, src = stock_db.stock_movements, masterdata_db.locations.alias("src")
    query = (
        select(m.c.site_id, m.c.epc, func.max(m.c.at).label("at"))
        .select_from(
            m.outerjoin(src, and_(src.c.site_id == m.c.site_id, src.c.location_id == m.c.from_location))
        )
        .where(m.c.to_location.is_not(None), or_(m.c.from_location.is_(None), src.c.kind == "dock"))
        .group_by(m.c.site_id, m.c.epc)
    )
    return query.where(m.c.site_id == site) if site is not None else query


def _on_hand(site: str | None) -> Any:
    """Present units per (site, location, sku, lot) with the latest receipt among them."""
    s, i, p = stock_db.stock_items, masterdata_db.items, masterdata_db.products
    recv = _receipts(site).subquery()
    received = func.max(func.coalesce(recv.c.at, s.c.updated_at))  # no receipt seen: its arrival there
    query = (
        select(s.c.site_id, s.c.location, i.c.sku, p.c.name, i.c.lot_code)
        .add_columns(func.count().label("quantity"), received.label("received_at"))
        .select_from(
            s.join(i, i.c.epc == s.c.epc)
            .join(p, p.c.sku == i.c.sku)
            .outerjoin(recv, and_(recv.c.site_id == s.c.site_id, recv.c.epc == s.c.epc))
        )
        .where(s.c.present.is_(True), s.c.location.is_not(None))
        .group_by(s.c.site_id, s.c.location, i.c.sku, p.c.name, i.c.lot_code)
    )
    return query.where(s.c.site_id == site) if site is not None else query


def _outbound(site: str | None) -> Any:
    """Per (site, location, sku, lot) the latest unit that left the location as demand."""
    m, i = stock_db.stock_movements, masterdata_db.items
    dest = masterdata_db.locations.alias("dest")
    query = (
        select(m.c.site_id, m.c.from_location, i.c.sku, i.c.lot_code, func.max(m.c.at).label("at"))
        .select_from(
            m.join(i, i.c.epc == m.c.epc).outerjoin(
                dest, and_(dest.c.site_id == m.c.site_id, dest.c.location_id == m.c.to_location)
            )
        )
        .where(
            m.c.from_location.is_not(None),
            m.c.reason.in_(OUTBOUND_REASONS),
            or_(m.c.to_location.is_(None), dest.c.kind == "dock"),
        )
        .group_by(m.c.site_id, m.c.from_location, i.c.sku, i.c.lot_code)
    )
    return query.where(m.c.site_id == site) if site is not None else query


async def last_receipts(conn: AsyncConnection, site: str) -> dict[tuple[str, str], datetime]:
    """Per (location, sku) of ``site`` the latest receipt among its units on hand (the planner's)."""
    q = _on_hand(site).subquery()
    rows = await conn.execute(
        select(q.c.location, q.c.sku, func.max(q.c.received_at)).group_by(q.c.location, q.c.sku)
    )
    return {(loc, sku): db.utc(at) for loc, sku, at in rows}


async def _unit_costs(conn: AsyncConnection) -> dict[str, float]:
    """Per SKU the preferred supplier's unit cost, else the cheapest (as the KPIs value stock)."""
    ps = rt.product_suppliers
    rows = await conn.execute(
        select(ps.c.sku, ps.c.unit_cost).order_by(ps.c.sku, ps.c.preferred.desc(), ps.c.unit_cost)
    )
    costs: dict[str, float] = {}
    for sku, cost in rows:
        costs.setdefault(sku, float(cost))
    return costs


def _days(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - db.utc(then)).total_seconds() / DAY_S)


async def dead_stock(
    conn: AsyncConnection,
    rule: DeadStockRule,
    *,
    currency: str,
    now: datetime,
    site: str | None = None,
    sites: Iterable[str] | None = None,
) -> list[DeadLot]:
    """Every dead lot and location (of ``site``, else of ``sites``, else everywhere), oldest first."""
    allowed = set(sites) if sites is not None else None
    outbound = {
        (r.site_id, r.from_location, r.sku, r.lot_code): db.utc(r.at)
        for r in await conn.execute(_outbound(site))
    }
    costs = await _unit_costs(conn)
    found: list[DeadLot] = []
    for r in await conn.execute(_on_hand(site)):
        if allowed is not None and r.site_id not in allowed:
            continue
        last_out = outbound.get((r.site_id, r.location, r.sku, r.lot_code))
        received = db.utc(r.received_at)
        since_receipt, since_out = _days(now, received), _days(now, last_out)
        if not rule.is_dead(since_receipt, since_out):
            continue
        cost = costs.get(r.sku)
        quantity = int(r.quantity)
        value = None if cost is None else money(quantity * cost, currency)
        found.append(
            DeadLot(
                r.site_id,
                r.location,
                r.sku,
                r.name or r.sku,
                r.lot_code,
                quantity,
                received,
                last_out,
                since_receipt or 0.0,
                since_out,
                cost,
                value,
            )
        )
    found.sort(key=lambda d: (-d.days_since_receipt, d.site_id, d.location, d.sku, d.lot_code or ""))
    return found


# --- alerts ---------------------------------------------------------------------------------------


def alert_detail(lot: DeadLot) -> str:
    """What the message needs beyond the alert's own columns (``limit_source``, JSON): the product,
    lot, quantity and both ages (``outbound_days`` null: never shipped from there)."""
    return json.dumps(
        {
            "sku": lot.sku,
            "lot": lot.lot_code,
            "quantity": lot.quantity,
            "received_days": round(lot.days_since_receipt, 1),
            "outbound_days": None if lot.days_since_outbound is None else round(lot.days_since_outbound, 1),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def parse_detail(text: str | None) -> dict[str, Any]:
    """:func:`alert_detail` read back; an empty mapping for anything else."""
    try:
        found = json.loads(text or "")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _alert_row(lot: DeadLot, rule: DeadStockRule, now: datetime) -> dict[str, Any]:
    idle = lot.days_since_receipt if lot.days_since_outbound is None else lot.days_since_outbound
    return {
        "site_id": lot.site_id,
        "zone": lot.location,
        "rule": lot.rule,
        "status": "open",
        "source": "cloud",
        "sensor_id": None,
        "limit": rule.outbound_days,
        "peak_value": idle,  # days without outbound (since receipt when never shipped), vs. limit
        "last_value": idle,
        "first_breach_at": lot.received_at,
        "last_breach_at": now,
        "kind": KIND,
        "severity": "warning",
        "limit_source": alert_detail(lot),
        "notified_at": now,  # told now, escalated from here
    }


@dataclass(frozen=True, slots=True)
class DeadStockCheck:
    opened: list[int]
    resolved: list[int]
    notices: list[Notice] = field(default_factory=list)


async def _open(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[Notice]]:
    a = alerts_db.alerts
    opened: list[int] = []
    notices: list[Notice] = []
    for row in rows:
        stmt = dialect_insert(conn, a).values(**row).on_conflict_do_nothing().returning(a.c.id)
        new_id = await conn.scalar(stmt)  # None: a concurrent check opened it first
        if new_id is not None:
            opened.append(int(new_id))
            notices.append(Notice({**row, "id": int(new_id), "escalation_level": 0}, "raised"))
    return opened, notices


async def check_dead_stock(
    engine: AsyncEngine, rule: DeadStockRule, *, currency: str = "EUR", now: datetime | None = None
) -> DeadStockCheck:
    """Open a ``dead_stock`` alert per dead lot and location, resolve this check's own alerts whose
    lot is no longer dead there. Other alert kinds are never touched."""
    now = db.utc(now) if now is not None else db.utcnow()
    async with engine.connect() as conn:
        found = await dead_stock(conn, rule, currency=currency, now=now)
    wanted = {(d.site_id, d.location, d.rule): d for d in found}
    a = alerts_db.alerts
    async with db.write_transaction(engine) as conn:
        active = await conn.execute(
            select(a.c.id, a.c.site_id, a.c.zone, a.c.rule).where(a.c.kind == KIND, a.c.status.in_(ACTIVE))
        )
        existing = {(r.site_id, r.zone, r.rule): int(r.id) for r in active}
        new = [_alert_row(d, rule, now) for k, d in sorted(wanted.items()) if k not in existing]
        opened, notices = await _open(conn, new)
        stale = sorted(alert_id for k, alert_id in existing.items() if k not in wanted)
        if stale:
            await conn.execute(
                update(a)
                .where(a.c.id.in_(stale), a.c.status.in_(ACTIVE))
                .values(
                    status="resolved", resolved_at=now, resolved_by=SYSTEM, resolve_reason=RESOLVED_REASON
                )
            )
    return DeadStockCheck(opened, stale, notices)


# --- the periodic job -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadStockOptions:
    rule: DeadStockRule = field(default_factory=DeadStockRule)
    enabled: bool = True
    interval_s: float = 3600.0
    currency: str = "EUR"


def stock_rule(settings: ReplenishSettings) -> DeadStockRule:
    return DeadStockRule(float(settings.dead_stock_receipt_days), float(settings.dead_stock_days))


def dead_stock_options(settings: Settings) -> DeadStockOptions:
    r = settings.cloud.replenish
    return DeadStockOptions(stock_rule(r), r.dead_stock_alerts, r.dead_stock_interval_s, r.currency)


async def dead_stock_loop(
    engine: AsyncEngine, options: DeadStockOptions, notifier: AlertNotifier | None = None
) -> None:
    """Run :func:`check_dead_stock` whenever this replica claims a due tick, then hand the opened
    alerts to ``notifier`` (after the commit); log state changes only."""

    async def step() -> None:
        await jobs.ensure_job(engine, JOB_NAME, options.interval_s)
        if not await jobs.claim_job(engine, JOB_NAME, options.interval_s, db.utcnow()):
            return
        result = await check_dead_stock(engine, options.rule, currency=options.currency)
        if notifier is not None and result.notices:
            notifier.notify(result.notices)
        if result.opened or result.resolved:
            log.info("dead stock check: opened %s, resolved %s", result.opened, result.resolved)

    await jobs.run_periodic("dead-stock", step, min(max(options.interval_s / 4, 0.05), 30.0), log)


def dead_stock_job(
    engine: AsyncEngine, options: DeadStockOptions | None = None, notifier: AlertNotifier | None = None
) -> contextlib.AbstractAsyncContextManager[None]:
    """Run :func:`dead_stock_loop` for the lifetime of the context (the app's lifespan)."""
    options = options or DeadStockOptions()
    job = (lambda: dead_stock_loop(engine, options, notifier)) if options.enabled else None
    return jobs.background("dead-stock-job", job)


__all__ = [
    "KIND",
    "DeadLot",
    "DeadStockCheck",
    "DeadStockOptions",
    "DeadStockRule",  # re-exported from cloud.replenish.policy, where the planner uses it too
    "alert_detail",
    "check_dead_stock",
    "dead_stock",
    "dead_stock_job",
    "dead_stock_options",
    "last_receipts",
    "parse_detail",
    "stock_rule",
]
