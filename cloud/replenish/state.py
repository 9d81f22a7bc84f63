"""A site's stock position for planning: on hand, on order, in transit, live proposals, supplies,
preferred suppliers, parameters and docks, read in one transaction per site.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain.evidence_tables import zone_products
from cloud.masterdata import tables as masterdata_db
from cloud.replenish import tables as rt
from cloud.replenish.dead_stock import last_receipts
from cloud.replenish.demand import SeriesForecast, SeriesKey
from cloud.replenish.policy import ALL_WEEKDAYS
from cloud.replenish.proposals import (
    ItemState,
    OpenProposal,
)
from shelfsense.config import ReplenishSettings


async def _site_lock(conn: AsyncConnection, site_id: str) -> None:
    if conn.dialect.name == "postgresql":
        key = 0x5250_0000_0000 + zlib.crc32(site_id.encode())  # "RP" + site hash
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _on_hand(conn: AsyncConnection, site_id: str) -> dict[tuple[str, str], float]:
    """Registered items on hand per (location, SKU), from the ledger's projection ``zone_products``
    (cloud.stock.zone_stock): a row per pair, not a scan of every item of the site."""
    z = zone_products
    rows = await conn.execute(
        select(z.c.location, z.c.sku, z.c["items"]).where(z.c.site_id == site_id, z.c["items"] > 0)
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
    receipts = await last_receipts(conn, site_id)
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
                last_receipt=receipts[(location, sku)].date() if (location, sku) in receipts else None,
                forecast_method=fc.method if fc else "",
                min_qty=p.min_qty if p is not None else None,
                max_qty=p.max_qty if p is not None else None,
            )
        )
    return items


__all__ = ["load_items"]
