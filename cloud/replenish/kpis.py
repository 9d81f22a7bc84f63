"""Inventory KPIs per product and location over a period, from the movement ledger.

Daily end-of-day stock is reconstructed backwards from the current book (``stock_items``): stock at
the end of day ``d`` = stock now - units that arrived after ``d`` + units that left after ``d``. From it:

* COGS = outbound units (the demand definition of :mod:`cloud.replenish.service`) x unit cost (the
  preferred supplier's); average inventory = mean end-of-day units (x unit cost for its value);
  turnover = COGS / average inventory value (``turnover_units`` without costs);
* days of cover = stock at the end of the period / mean daily outbound;
* stock-out days = days that ended with no stock;
* fill rate, estimated: shipped / (shipped + lost), where lost = stock-out days x the mean daily
  outbound of the days in stock (the ledger knows no unfilled orders, only days without stock);
* on-time delivery = received purchase orders (received in the period) that arrived by their expected
  date / all received, by order line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.core import db
from cloud.masterdata import tables as masterdata_db
from cloud.replenish import tables as rt
from cloud.replenish.demand import outbound_query
from cloud.stock import tables as stock_db

MAX_DAYS = 3660


@dataclass(frozen=True, slots=True)
class KpiQuery:
    since: date
    until: date  # exclusive
    site: str | None = None
    product: str | None = None
    location: str | None = None

    @property
    def days(self) -> int:
        return (self.until - self.since).days


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _ratio(num: float, den: float) -> float | None:
    return None if den <= 0 else num / den


async def _unit_costs(conn: AsyncConnection) -> dict[str, float]:
    ps = rt.product_suppliers
    rows = await conn.execute(
        select(ps.c.sku, ps.c.unit_cost).order_by(ps.c.sku, ps.c.preferred.desc(), ps.c.unit_cost)
    )
    costs: dict[str, float] = {}
    for sku, cost in rows:
        costs.setdefault(sku, float(cost))
    return costs


def _wanted(q: KpiQuery, site: str, location: str | None, sku: str) -> bool:
    return (
        location is not None
        and (q.site is None or site == q.site)
        and (q.product is None or sku == q.product)
        and (q.location is None or location == q.location)
    )


async def _current(conn: AsyncConnection, q: KpiQuery) -> dict[tuple[str, str, str], float]:
    s, items = stock_db.stock_items, masterdata_db.items
    rows = await conn.execute(
        select(s.c.site_id, s.c.location, items.c.sku, func.count())
        .select_from(s.join(items, items.c.epc == s.c.epc))
        .where(s.c.present.is_(True))
        .group_by(s.c.site_id, s.c.location, items.c.sku)
    )
    return {(st, loc, sku): float(n) for st, loc, sku, n in rows if _wanted(q, st, loc, sku)}


async def _flows(conn: AsyncConnection, q: KpiQuery, today: date) -> dict[tuple[str, str, str], np.ndarray]:
    """Net arrivals per key and day over ``[since, today]`` (index = days since ``since``)."""
    m, items = stock_db.stock_movements, masterdata_db.items
    rows = await conn.execute(
        select(m.c.site_id, m.c.from_location, m.c.to_location, items.c.sku, m.c.at)
        .select_from(m.join(items, items.c.epc == m.c.epc))
        .where(m.c.at >= _start(q.since))
    )
    span = (today - q.since).days + 1
    flows: dict[tuple[str, str, str], np.ndarray] = {}
    for site, src, dst, sku, at in rows:
        day = (db.utc(at).date() - q.since).days
        if day >= span:  # stamped in the future (edge clock skew): not part of any day yet
            continue
        for location, sign in ((dst, 1.0), (src, -1.0)):
            if _wanted(q, site, location, sku):
                flows.setdefault((site, location, sku), np.zeros(span))[day] += sign
    return flows


async def _outbound(conn: AsyncConnection, q: KpiQuery) -> dict[tuple[str, str, str], np.ndarray]:
    rows = await conn.execute(outbound_query(None, _start(q.since), _start(q.until)))
    out: dict[tuple[str, str, str], np.ndarray] = {}
    for site, location, sku, at in rows:
        if _wanted(q, site, location, sku):
            out.setdefault((site, location, sku), np.zeros(q.days))[(db.utc(at).date() - q.since).days] += 1
    return out


async def _on_time(conn: AsyncConnection, q: KpiQuery) -> dict[str, Any]:
    po, lines = rt.purchase_orders, rt.purchase_order_lines
    query = (
        select(po.c.id, po.c.expected_date, po.c.received_date)
        .select_from(po.join(lines, lines.c.po_id == po.c.id))
        .where(po.c.status == "received", po.c.received_date >= q.since, po.c.received_date < q.until)
        .distinct()
    )
    if q.site is not None:
        query = query.where(po.c.site_id == q.site)
    if q.product is not None:
        query = query.where(lines.c.sku == q.product)
    if q.location is not None:
        query = query.where(lines.c.location_id == q.location)
    rows = (await conn.execute(query)).all()
    on_time = sum(1 for _, expected, received in rows if received <= expected)
    return {"received_orders": len(rows), "on_time_orders": on_time, "rate": _ratio(on_time, len(rows))}


def _item_kpis(
    key: tuple[str, str, str], end_of_day: np.ndarray, shipped: np.ndarray, unit_cost: float | None
) -> dict[str, Any]:
    units = float(shipped.sum())
    avg_units = float(end_of_day.mean())
    out_days = int((end_of_day <= 0).sum())
    in_stock = len(end_of_day) - out_days
    daily = units / len(end_of_day)
    lost = out_days * (units / in_stock) if in_stock else 0.0
    cost = unit_cost if unit_cost is not None else 0.0
    return {
        "site_id": key[0],
        "location_id": key[1],
        "sku": key[2],
        "unit_cost": unit_cost,
        "outbound_units": units,
        "cogs": units * cost,
        "average_inventory_units": avg_units,
        "average_inventory_value": avg_units * cost,
        "turnover": _ratio(units * cost, avg_units * cost) if cost > 0 else None,
        "turnover_units": _ratio(units, avg_units),
        "closing_units": float(end_of_day[-1]),
        "days_of_cover": _ratio(float(end_of_day[-1]), daily),
        "stock_out_days": out_days,
        "fill_rate": _ratio(units, units + lost) if units + lost > 0 else None,
    }


def _totals(rows: Sequence[dict[str, Any]], days: int) -> dict[str, Any]:
    units = sum(r["outbound_units"] for r in rows)
    cogs = sum(r["cogs"] for r in rows)
    avg_value = sum(r["average_inventory_value"] for r in rows)
    avg_units = sum(r["average_inventory_units"] for r in rows)
    closing = sum(r["closing_units"] for r in rows)
    return {
        "outbound_units": units,
        "cogs": cogs,
        "average_inventory_units": avg_units,
        "average_inventory_value": avg_value,
        "turnover": _ratio(cogs, avg_value),
        "turnover_units": _ratio(units, avg_units),
        "days_of_cover": _ratio(closing, units / days) if days else None,
        "stock_out_days": sum(r["stock_out_days"] for r in rows),
    }


async def compute_kpis(conn: AsyncConnection, q: KpiQuery, today: date | None = None) -> dict[str, Any]:
    """KPIs per (site, location, product) with stock or movements in the period, plus totals."""
    if q.days <= 0 or q.days > MAX_DAYS:
        raise ValueError(f"the period must be 1..{MAX_DAYS} days, got {q.days}")
    today = max(today or db.utcnow().date(), q.until - timedelta(days=1))
    current = await _current(conn, q)
    flows = await _flows(conn, q, today)
    shipped = await _outbound(conn, q)
    costs = await _unit_costs(conn)
    span = (today - q.since).days + 1
    rows = []
    for key in sorted(set(current) | set(flows) | set(shipped)):
        net = flows.get(key, np.zeros(span))
        # Stock at the end of day d = now - net arrivals after day d.
        after = np.concatenate([np.cumsum(net[::-1])[::-1][1:], [0.0]])
        end_of_day = np.maximum(current.get(key, 0.0) - after, 0.0)[: q.days]
        sold = shipped.get(key, np.zeros(q.days))
        if not end_of_day.any() and not sold.any():
            continue
        rows.append(_item_kpis(key, end_of_day, sold, costs.get(key[2])))
    return {
        "since": q.since.isoformat(),
        "until": q.until.isoformat(),
        "days": q.days,
        "filters": {"site": q.site, "product": q.product, "location": q.location},
        "items": rows,
        "totals": _totals(rows, q.days),
        "on_time_delivery": await _on_time(conn, q),
    }


__all__ = ["KpiQuery", "compute_kpis"]
