"""Demand history and the forecasts of every series.

Demand is read from the movement ledger: per product (the item's SKU) and location, the units that
*left* the location to outside the site or to a dock (shipping), with reason ``portal`` or
``manual``. Receipts, moves between storage locations, stocktake corrections and write-offs
(``adjustment``) are not demand; nor is the hop from a dock to outside, which would count a shipment
twice. Daily series of all products and locations are forecast in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.ingest.projections import dialect_insert
from cloud.masterdata import tables as masterdata_db
from cloud.replenish import tables as rt
from cloud.replenish.forecast import forecast
from cloud.stock import tables as stock_db

DEMAND_REASONS = ("portal", "manual")


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


__all__ = ["forecast_all", "forecasts_query", "load_demand", "outbound_query", "store_forecast_errors"]
