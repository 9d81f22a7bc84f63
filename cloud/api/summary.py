"""One-call overview (the demo prints it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import ColumnElement, Table, func, select

from cloud.api.deps import DbConn, ViewerUser, require_role
from cloud.api.schemas import EdgeBrief, Summary
from cloud.api.sites import site_clause
from cloud.core import db
from cloud.core.security import Role

router = APIRouter(prefix="/api/v1", tags=["summary"], dependencies=[Depends(require_role(Role.viewer))])


@router.get("/summary", response_model=Summary)
async def summary(conn: DbConn, user: ViewerUser, site: str | None = None) -> Summary:
    def count(table: Table, *conditions: ColumnElement[bool]) -> Any:
        query = select(func.count()).select_from(table).where(*conditions)
        return query.where(site_clause(user, table.c.site_id, site)).scalar_subquery()

    e = db.edges
    received = select(func.coalesce(func.sum(e.c.events_received), 0))
    received = received.where(site_clause(user, e.c.site_id, site))
    row = (
        await conn.execute(
            select(
                count(db.stock_items, db.stock_items.c.present.is_(True)).label("items_on_hand"),
                count(db.sensor_readings).label("sensor_readings"),
                count(db.tag_observations).label("tag_observations"),
                count(db.portal_passages).label("passages"),
                count(
                    db.portal_passages,
                    db.portal_passages.c.direction == "unknown",
                    db.portal_passages.c.resolved_run_id.is_(None),
                ).label("passages_direction_unknown"),
                # Acknowledged alerts are still active excursions: they count as open until resolved.
                count(db.alerts, db.alerts.c.status.in_(("open", "acknowledged"))).label("alerts_open"),
                count(db.alerts).label("alerts_total"),
                received.scalar_subquery().label("events_received"),
            )
        )
    ).one()
    edge_query = select(e.c.edge_id, e.c.acked_through, e.c.last_seen).order_by(e.c.edge_id)
    edge_query = edge_query.where(site_clause(user, e.c.site_id, site))
    edges = [EdgeBrief.model_validate(dict(r)) for r in (await conn.execute(edge_query)).mappings()]
    return Summary(**{k: int(v) for k, v in row._mapping.items()}, edges=edges)
