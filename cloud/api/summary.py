"""One-call overview (the demo prints it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import ColumnElement, Table, func, select

from cloud.alerts import tables as alerts_db
from cloud.api.deps import DbConn, ViewerUser, require_role
from cloud.api.schemas import EdgeBrief, Summary
from cloud.api.sites import site_clause
from cloud.coldchain import sensor_tables as sensors_db
from cloud.core.security import Role
from cloud.ingest import tables as ingest_db
from cloud.stock import tables as stock_db

router = APIRouter(prefix="/api/v1", tags=["summary"], dependencies=[Depends(require_role(Role.viewer))])


@router.get("/summary", response_model=Summary)
async def summary(conn: DbConn, user: ViewerUser, site: str | None = None) -> Summary:
    def count(table: Table, *conditions: ColumnElement[bool]) -> Any:
        query = select(func.count()).select_from(table).where(*conditions)
        return query.where(site_clause(user, table.c.site_id, site)).scalar_subquery()

    e = ingest_db.edges
    received = select(func.coalesce(func.sum(e.c.events_received), 0))
    received = received.where(site_clause(user, e.c.site_id, site))
    row = (
        await conn.execute(
            select(
                count(stock_db.stock_items, stock_db.stock_items.c.present.is_(True)).label("items_on_hand"),
                count(sensors_db.sensor_readings).label("sensor_readings"),
                count(stock_db.tag_observations).label("tag_observations"),
                count(stock_db.portal_passages).label("passages"),
                count(
                    stock_db.portal_passages,
                    stock_db.portal_passages.c.direction == "unknown",
                    stock_db.portal_passages.c.resolved_run_id.is_(None),
                ).label("passages_direction_unknown"),
                # Acknowledged alerts are still active excursions: they count as open until resolved.
                count(alerts_db.alerts, alerts_db.alerts.c.status.in_(("open", "acknowledged"))).label(
                    "alerts_open"
                ),
                count(alerts_db.alerts).label("alerts_total"),
                received.scalar_subquery().label("events_received"),
            )
        )
    ).one()
    edge_query = select(e.c.edge_id, e.c.acked_through, e.c.last_seen).order_by(e.c.edge_id)
    edge_query = edge_query.where(site_clause(user, e.c.site_id, site))
    edges = [EdgeBrief.model_validate(dict(r)) for r in (await conn.execute(edge_query)).mappings()]
    return Summary(**{k: int(v) for k, v in row._mapping.items()}, edges=edges)
