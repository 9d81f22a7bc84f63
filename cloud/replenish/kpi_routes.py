"""Inventory KPIs: turnover, days of cover, fill rate, stock-out days, on-time delivery; dead stock."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from cloud.api.deps import DbConn, SettingsDep, ViewerUser, require_role
from cloud.api.sites import one_site
from cloud.core import db
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.replenish.dead_stock import dead_stock, stock_rule
from cloud.replenish.kpis import KpiQuery, compute_kpis
from cloud.replenish.money import decimals, money, round_money
from cloud.replenish.schemas import DeadStockReport, KpiReport

MONEY = ("unit_cost", "cogs", "average_inventory_value")

router = APIRouter(
    prefix="/api/v1", tags=["replenishment"], dependencies=[Depends(require_role(Role.viewer))]
)


@router.get("/kpis", response_model=KpiReport)
async def kpis(
    conn: DbConn,
    user: ViewerUser,
    settings: SettingsDep,
    site: str | None = None,
    product: str | None = None,
    location: str | None = None,
    since: Annotated[date | None, Query(description="first day (UTC), default 30 days before until")] = None,
    until: Annotated[date | None, Query(description="day after the last one (UTC), default today")] = None,
) -> dict[str, Any]:
    end = until or db.utcnow().date()
    start = since or end - timedelta(days=30)
    try:
        report = await compute_kpis(conn, KpiQuery(start, end, one_site(user, site), product, location))
    except ValueError as exc:
        raise ApiError(422, "invalid_period", str(exc)) from exc
    currency = settings.cloud.replenish.currency
    report["items"] = [round_money(row, MONEY, currency) for row in report["items"]]
    report["totals"] = round_money(report["totals"], MONEY, currency)
    return report


@router.get("/dead-stock", response_model=DeadStockReport)
async def dead_stock_list(
    conn: DbConn, user: ViewerUser, settings: SettingsDep, site: str | None = None
) -> dict[str, Any]:
    """Lots on hand received long ago and not shipped for long (both ages from ``[cloud.replenish]``
    ``dead_stock_receipt_days`` / ``dead_stock_days``), oldest receipt first, valued at unit cost."""
    r = settings.cloud.replenish
    rule = stock_rule(r)
    found = await dead_stock(conn, rule, currency=r.currency, now=db.utcnow(), site=site, sites=user.sites)
    total = money(sum(d.value or 0.0 for d in found), r.currency)
    return {
        "currency": r.currency,
        "decimals": decimals(r.currency),
        "receipt_days": rule.receipt_days,
        "outbound_days": rule.outbound_days,
        "total_value": total,
        "items": [d.to_json() for d in found],
    }
