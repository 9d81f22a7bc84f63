"""The cloud's current state of a site as a :class:`~cloud.whatif.model.SiteModel`.

Everything comes from the same reads the restocking run uses (:mod:`cloud.replenish.service`): demand
history and the fitted forecasts, the items with their suppliers, lead times, pack sizes, MOQs,
service levels and min/max overrides (``load_items``). On top: the daily forecast path over the
horizon (the same fitted model, ``horizon = days``), lots with their effective (dynamic) expiry from
:mod:`cloud.lots.service`, open purchase-order lines at their expected date, exported transfers in
transit and live proposals (counted as on order, as the planner counts them). Stock without a lot
expires after the product's shelf life from today when it has one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.core import db
from cloud.lots import service as lot_service
from cloud.masterdata import tables as masterdata_db
from cloud.replenish import tables as rt
from cloud.replenish.demand import SeriesKey, forecast_all, load_demand
from cloud.replenish.proposals import ItemState
from cloud.replenish.state import load_items
from cloud.whatif.errors import SiteNotFound
from cloud.whatif.model import NO_EXPIRY, Receipt, SiteModel, fitted_demand
from cloud.whatif.scenario import Scenario
from shelfsense.config import ReplenishSettings


async def _shelf_lives(conn: AsyncConnection) -> dict[str, float]:
    p = masterdata_db.products
    rows = await conn.execute(select(p.c.sku, p.c.shelf_life_days).where(p.c.shelf_life_days.is_not(None)))
    return {sku: float(days) for sku, days in rows if days}


async def _lots(
    conn: AsyncConnection, site_id: str, today: date
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(location, sku) -> [(units, days to the effective expiry)] for lots on hand at the site."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    start = datetime.combine(today, time(), tzinfo=UTC)
    for evidence in await lot_service.all_evidence(conn, site=site_id):
        expiry = evidence.effective_expiry
        days = NO_EXPIRY if expiry is None else (db.utc(expiry) - start).total_seconds() / 86400.0
        for (site, location), units in evidence.history.on_hand.items():
            if site == site_id and location is not None and units > 0:
                out[(location, evidence.history.sku)].append((float(units), max(0.0, days)))
    return out


async def _purchase_receipts(
    conn: AsyncConnection, site_id: str, today: date
) -> list[tuple[str, str, int, float]]:
    po, lines = rt.purchase_orders, rt.purchase_order_lines
    rows = await conn.execute(
        select(
            lines.c.location_id, lines.c.sku, po.c.expected_date, lines.c.quantity - lines.c.received_quantity
        )
        .select_from(lines.join(po, po.c.id == lines.c.po_id))
        .where(po.c.site_id == site_id, po.c.status == "open")
    )
    return [(loc, sku, max(0, (due - today).days), float(q)) for loc, sku, due, q in rows if q and q > 0]


async def _proposal_receipts(
    conn: AsyncConnection, site_id: str, today: date
) -> list[tuple[str, str, int, float, bool]]:
    """Exported transfers not yet arrived and live (open/approved) proposals, at their expected day."""
    p = rt.proposals
    live = p.c.status.in_(rt.LIVE_STATUSES)
    in_transit = (p.c.kind == "transfer") & (p.c.status == "exported") & (p.c.expected_arrival >= today)
    rows = await conn.execute(
        select(p.c.location_id, p.c.sku, p.c.kind, p.c.expected_arrival, p.c.quantity).where(
            p.c.site_id == site_id, p.c.kind.in_(("purchase", "transfer")), live | in_transit
        )
    )
    out = []
    for loc, sku, kind, due, qty in rows:
        day = 1 if due is None else max(0, (due - today).days)
        out.append((loc, sku, day, float(qty), kind == "transfer"))
    return out


def _grid(
    items: list[ItemState], locations: list[str] | None
) -> tuple[list[str], list[str], dict[tuple[str, str], ItemState]]:
    by_key = {(i.product, i.location): i for i in items if not locations or i.location in locations}
    skus = sorted({sku for sku, _ in by_key})
    locs = sorted({loc for _, loc in by_key})
    return skus, locs, by_key


def _demand_paths(
    history_keys: list[SeriesKey], matrix: np.ndarray, site_id: str, days: int
) -> dict[tuple[str, str], np.ndarray]:
    rows = [i for i, key in enumerate(history_keys) if key[0] == site_id]
    if not rows:
        return {}
    paths, _sigma, _methods = fitted_demand(matrix[rows], days)
    return {(history_keys[i][2], history_keys[i][1]): paths[n] for n, i in enumerate(rows)}


async def load_model(
    conn: AsyncConnection, scenario: Scenario, settings: ReplenishSettings, today: date | None = None
) -> SiteModel:
    """The model of ``scenario.site_id`` as the cloud holds it today."""
    site_id = scenario.site_id or ""
    days = scenario.simulation.days
    today = today or db.utcnow().date()
    history = await load_demand(
        conn, [site_id], today - timedelta(days=settings.history_days), settings.history_days
    )
    forecasts = forecast_all(history, settings.method)
    items = await load_items(conn, site_id, today, forecasts, history.last_outbound, settings)
    skus, locations, by_key = _grid(items, scenario.locations)
    if not skus:
        raise SiteNotFound(f"site {site_id!r} has no stock, demand or parameters to simulate")
    paths = _demand_paths(history.keys, history.matrix, site_id, days)
    shelf = await _shelf_lives(conn)
    lots = await _lots(conn, site_id, today)
    receipts_by_key: dict[tuple[str, str], list[tuple[int, float, bool]]] = defaultdict(list)
    for loc, sku, day, qty in await _purchase_receipts(conn, site_id, today):
        receipts_by_key[(sku, loc)].append((day, qty, False))
    for loc, sku, day, qty, transfer in await _proposal_receipts(conn, site_id, today):
        receipts_by_key[(sku, loc)].append((day, qty, transfer))
    return _assemble(site_id, skus, locations, by_key, paths, shelf, lots, receipts_by_key, days, settings)


def _assemble(
    site_id: str,
    skus: list[str],
    locations: list[str],
    by_key: Mapping[tuple[str, str], ItemState],
    paths: Mapping[tuple[str, str], np.ndarray],
    shelf: Mapping[str, float],
    lots: Mapping[tuple[str, str], list[tuple[float, float]]],
    receipts_by_key: Mapping[tuple[str, str], list[tuple[int, float, bool]]],
    days: int,
    settings: ReplenishSettings,
) -> SiteModel:
    items: list[ItemState] = []
    mean_path = np.zeros((len(skus) * len(locations), days))
    stock: list[list[tuple[float, float]]] = []
    receipts: list[Receipt] = []
    for sku in skus:
        life = shelf.get(sku, NO_EXPIRY)
        for location in locations:
            index = len(items)
            item = by_key.get((sku, location)) or ItemState(
                product=sku,
                location=location,
                on_hand=0.0,
                demand_mean=0.0,
                transfer_lead_time_days=settings.transfer_lead_time_days,
            )
            items.append(item)
            path = paths.get((sku, location))
            mean_path[index] = path if path is not None else item.demand_mean
            known = lots.get((location, sku), [])
            rest = item.on_hand - sum(q for q, _ in known)
            stock.append(known + ([(rest, life)] if rest > 0 else []))
            for day, qty, transfer in receipts_by_key.get((sku, location), []):
                receipts.append(Receipt(index, day, qty, NO_EXPIRY, transfer))
    model = SiteModel(
        site_id=site_id,
        skus=skus,
        locations=locations,
        categories=[""] * len(skus),
        items=items,
        mean_path=mean_path,
        poisson=np.zeros(len(items), dtype=bool),
        shelf_life=np.repeat([shelf.get(s, NO_EXPIRY) for s in skus], len(locations)).astype(np.float64),
        lots=stock,
        receipts=receipts,
        transfer_lead_time_days=max(1, settings.transfer_lead_time_days),
    )
    return model.perishable_first()
