"""Cold-chain alerts."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from sqlalchemy import select

from cloud.api.deps import DbConn, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.core import db
from cloud.core.security import Role
from cloud.schemas import AlertPublic, Page

router = APIRouter(prefix="/api/v1", tags=["alerts"], dependencies=[Depends(require_role(Role.viewer))])


@router.get("/alerts", response_model=Page[AlertPublic])
async def list_alerts(
    conn: DbConn,
    status: Literal["open", "resolved", "all"] = "open",
    site: str | None = None,
    zone: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AlertPublic]:
    t = db.alerts
    query = select(t).order_by(t.c.first_breach_at.desc(), t.c.id.desc())
    if status != "all":
        query = query.where(t.c.status == status)
    if site is not None:
        query = query.where(t.c.site_id == site)
    if zone is not None:
        query = query.where(t.c.zone == zone)
    rows, total = await paginate(conn, query, limit, offset)
    return Page[AlertPublic](items=[AlertPublic.model_validate(r) for r in rows], total=total)
