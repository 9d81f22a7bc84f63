"""Sensors (latest value) and their readings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import ColumnElement, Select, select

from cloud.api.deps import DbConn, ViewerUser, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.api.schemas import Page
from cloud.api.sites import site_clause
from cloud.coldchain import sensor_tables as sensors_db
from cloud.coldchain.schemas import SensorPublic, SensorReadingPublic
from cloud.core.security import Role
from cloud.retention.schemas import SensorRollupPublic
from cloud.retention.tables import sensor_reading_rollups

router = APIRouter(prefix="/api/v1", tags=["sensors"], dependencies=[Depends(require_role(Role.viewer))])


@router.get("/sensors", response_model=Page[SensorPublic])
async def list_sensors(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    zone: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SensorPublic]:
    t = sensors_db.sensors
    query = select(t).order_by(t.c.site_id, t.c.sensor_id, t.c.quantity)
    query = query.where(site_clause(user, t.c.site_id, site))
    if zone is not None:
        query = query.where(t.c.zone == zone)
    rows, total = await paginate(conn, query, limit, offset)
    return Page[SensorPublic](items=[SensorPublic.model_validate(r) for r in rows], total=total)


@router.get("/sensors/{sensor_id}/readings", response_model=Page[SensorReadingPublic])
async def list_readings(
    conn: DbConn,
    user: ViewerUser,
    sensor_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    quantity: str | None = None,
    site: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SensorReadingPublic]:
    """Readings in time order; ``since`` inclusive, ``until`` exclusive (naive times are UTC)."""
    t = sensors_db.sensor_readings
    query = select(t).where(t.c.sensor_id == sensor_id).order_by(t.c.time, t.c.id)
    query = _window(query, t.c.time, t.c.quantity, since, until, quantity)
    query = query.where(site_clause(user, t.c.site_id, site))
    rows, total = await paginate(conn, query, limit, offset)
    items = [
        SensorReadingPublic.model_validate({**r, "flags": [f for f in r["flags"].split(",") if f]})
        for r in rows
    ]
    return Page[SensorReadingPublic](items=items, total=total)


@router.get("/sensors/{sensor_id}/rollups", response_model=Page[SensorRollupPublic])
async def list_rollups(
    conn: DbConn,
    user: ViewerUser,
    sensor_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    quantity: str | None = None,
    site: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SensorRollupPublic]:
    """Buckets (min/max/mean/count) of readings older than the retention period, in time order;
    ``since`` inclusive, ``until`` exclusive, on the bucket's start. Newer readings: ``/readings``."""
    t = sensor_reading_rollups
    query = (
        select(t).where(t.c.sensor_id == sensor_id).order_by(t.c.bucket, t.c.quantity, t.c.zone, t.c.site_id)
    )
    query = _window(query, t.c.bucket, t.c.quantity, since, until, quantity)
    query = query.where(site_clause(user, t.c.site_id, site))
    rows, total = await paginate(conn, query, limit, offset)
    items = [SensorRollupPublic.model_validate({**r, "zone": r["zone"] or None}) for r in rows]
    return Page[SensorRollupPublic](items=items, total=total)


def _window(
    query: Select[Any],
    time_column: ColumnElement[datetime],
    quantity_column: ColumnElement[str],
    since: datetime | None,
    until: datetime | None,
    quantity: str | None,
) -> Select[Any]:
    """``since`` inclusive, ``until`` exclusive, one quantity if given: the filters both series share."""
    if since is not None:
        query = query.where(time_column >= since)
    if until is not None:
        query = query.where(time_column < until)
    if quantity is not None:
        query = query.where(quantity_column == quantity)
    return query
