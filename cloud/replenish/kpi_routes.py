"""Inventory KPIs: turnover, days of cover, fill rate, stock-out days, on-time delivery."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from cloud.api.deps import DbConn, SettingsDep, ViewerUser, require_role
from cloud.api.sites import one_site
from cloud.core import db
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.replenish.kpis import KpiQuery, compute_kpis
from cloud.replenish.money import round_money
from cloud.replenish.schemas import KpiReport

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
