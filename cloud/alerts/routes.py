"""Cold-chain alerts: list, detail (with readings and limits for a chart), deliveries, and actions.

Viewers read; operators (and admins) acknowledge and resolve. Notifications about an action are
queued only after its transaction committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.alerts import tables as alerts_db
from cloud.alerts.lifecycle import (
    acknowledge,
    alert_detail,
    deliveries,
    resolve,
)
from cloud.alerts.rules import ACTIVE, effective_limits
from cloud.alerts.schemas import AlertPublic
from cloud.api.deps import DbConn, Engine, OperatorUser, UserPrincipal, ViewerUser, ZonesDep, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.api.schemas import ErrorBody, Page
from cloud.api.sites import check_site, site_clause
from cloud.coldchain.service import Notice, product_limits
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.notify.notifier import notifier_of
from cloud.retention.schemas import SensorRollupPublic

router = APIRouter(prefix="/api/v1", tags=["alerts"], dependencies=[Depends(require_role(Role.viewer))])

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


class AlertOut(AlertPublic):
    kind: str = Field(description="single_event, instant, cumulative, gap, local_alarm or edge_incarnation")
    severity: str
    limit_source: str | None = Field(description='"zone" or "product:SKU,..." (whose limits applied)')
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    resolved_by: str | None = Field(description="the operator who closed it; null when readings did")
    resolve_reason: str | None
    escalation_level: int = Field(description="0: first contact group; n: escalated n times")


class ReadingPoint(BaseModel):
    sensor_id: str
    quantity: str
    value: float
    unit: str
    time: datetime


class ExcursionEventOut(BaseModel):
    sensor_id: str
    kind: str
    rule: str
    state: str
    at: datetime
    started_at: datetime
    value: float | None
    peak: float | None


class LimitsOut(BaseModel):
    min_temp_c: float | None
    max_temp_c: float | None
    max_humidity: float | None
    hysteresis: float
    source: str


class Window(BaseModel):
    start: datetime
    end: datetime


class AlertDetail(AlertOut):
    limits: LimitsOut | None = Field(description="the limits in force for the zone now")
    window: Window
    readings: list[ReadingPoint]
    readings_truncated: bool
    rollups: list[SensorRollupPublic] = Field(
        description="the zone's buckets (min/max/mean/count) in the window, for readings past retention"
    )
    events: list[ExcursionEventOut]


class DeliveryOut(BaseModel):
    delivery_id: str
    event: str = Field(description="raised, acknowledged, escalated or resolved")
    channel: str
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    elapsed_ms: float
    at: datetime


class AcknowledgeBody(BaseModel):
    comment: Text


class ResolveBody(BaseModel):
    reason: Text


@router.get("/alerts", response_model=Page[AlertOut])
async def list_alerts(
    conn: DbConn,
    user: ViewerUser,
    status: Literal["open", "acknowledged", "active", "resolved", "all"] = "open",
    site: str | None = None,
    zone: str | None = None,
    kind: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AlertOut]:
    """``open``: not yet acknowledged; ``active``: open or acknowledged."""
    t = alerts_db.alerts
    query = select(t).order_by(t.c.first_breach_at.desc(), t.c.id.desc())
    if status == "active":
        query = query.where(t.c.status.in_(ACTIVE))
    elif status != "all":
        query = query.where(t.c.status == status)
    query = query.where(site_clause(user, t.c.site_id, site))
    if zone is not None:
        query = query.where(t.c.zone == zone)
    if kind is not None:
        query = query.where(t.c.kind == kind)
    rows, total = await paginate(conn, query, limit, offset)
    return Page[AlertOut](items=[AlertOut.model_validate(r) for r in rows], total=total)


@router.get("/alerts/{alert_id}", response_model=AlertDetail, responses=_ERRORS)
async def get_alert(alert_id: int, conn: DbConn, zones: ZonesDep, user: ViewerUser) -> AlertDetail:
    row = await db_alert_or_404(conn, alert_id, user)
    products = await product_limits(conn, row["site_id"], [row["zone"]])
    limits = effective_limits(zones.get((row["site_id"], row["zone"])), products.get(row["zone"]))
    detail = await alert_detail(conn, alert_id, limits)
    return AlertDetail.model_validate(detail)


@router.get("/alerts/{alert_id}/deliveries", response_model=list[DeliveryOut], responses=_ERRORS)
async def get_deliveries(alert_id: int, conn: DbConn, user: ViewerUser) -> list[DeliveryOut]:
    """Delivery attempts; ``error`` (which may quote the destination's reply) is shown to admins
    only, ``null`` for everyone else."""
    await db_alert_or_404(conn, alert_id, user)
    rows = await deliveries(conn, alert_id)
    admin = user.role >= Role.admin
    return [DeliveryOut.model_validate(r if admin else {**r, "error": None}) for r in rows]


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut, responses=_ERRORS)
async def post_acknowledge(
    alert_id: int, body: AcknowledgeBody, user: OperatorUser, engine: Engine, request: Request
) -> AlertOut:
    """Someone is on it: stops escalation. The alert stays active until the excursion ends."""
    await _check_alert_site(engine, alert_id, user)
    row, notice = await acknowledge(engine, alert_id, user.name, body.comment)
    _notify(request, notice)
    return AlertOut.model_validate(row)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, responses=_ERRORS)
async def post_resolve(
    alert_id: int, body: ResolveBody, user: OperatorUser, engine: Engine, request: Request
) -> AlertOut:
    """Close an alert by hand (e.g. the probe was faulty); the reason is required and kept."""
    await _check_alert_site(engine, alert_id, user)
    row, notice = await resolve(engine, alert_id, user.name, body.reason)
    _notify(request, notice)
    return AlertOut.model_validate(row)


async def db_alert_or_404(conn: AsyncConnection, alert_id: int, user: UserPrincipal) -> dict[str, Any]:
    """The alert, or 404 when it does not exist or belongs to a site the user does not hold."""
    row = (
        (await conn.execute(select(alerts_db.alerts).where(alerts_db.alerts.c.id == alert_id)))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise ApiError(404, "not_found", f"alert {alert_id} does not exist")
    check_site(user, row["site_id"], f"alert {alert_id}")
    return dict(row)


async def _check_alert_site(engine: AsyncEngine, alert_id: int, user: UserPrincipal) -> None:
    async with engine.connect() as conn:
        await db_alert_or_404(conn, alert_id, user)


def _notify(request: Request, notice: Notice) -> None:
    notifier = notifier_of(request.app)
    if notifier is not None:
        notifier.notify([notice])
