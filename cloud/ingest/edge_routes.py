"""Edges: state of each edge's sync and device health; registration by admins."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from cloud.admin import create_edge_async, revoke_edge_tokens_async
from cloud.api.deps import AdminUser, DbConn, Engine, ViewerUser
from cloud.api.pagination import Limit, Offset, paginate
from cloud.api.schemas import Page
from cloud.api.sites import check_site, site_clause
from cloud.core.errors import AdminError, ApiError
from cloud.ingest import tables as ingest_db
from cloud.ingest.schemas import DeviceHealthPublic, EdgeCreate, EdgeCreated, EdgePublic

router = APIRouter(prefix="/api/v1", tags=["edges"])


@router.get("/edges", response_model=Page[EdgePublic])
async def list_edges(
    conn: DbConn, user: ViewerUser, site: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> Page[EdgePublic]:
    t = ingest_db.edges
    query = select(t).order_by(t.c.edge_id).where(site_clause(user, t.c.site_id, site))
    rows, total = await paginate(conn, query, limit, offset)
    devices: dict[str, list[DeviceHealthPublic]] = {}
    if rows:
        h = ingest_db.device_health
        health_query = (
            select(h)
            .where(h.c.edge_id.in_([r["edge_id"] for r in rows]))
            .order_by(h.c.edge_id, h.c.device_id)
        )
        for r in (await conn.execute(health_query)).mappings():
            devices.setdefault(r["edge_id"], []).append(DeviceHealthPublic.model_validate(r))
    items = [EdgePublic.model_validate({**r, "devices": devices.get(r["edge_id"], [])}) for r in rows]
    return Page[EdgePublic](items=items, total=total)


@router.post("/edges", response_model=EdgeCreated, status_code=201)
async def register_edge(body: EdgeCreate, engine: Engine, admin: AdminUser) -> EdgeCreated:
    """Register an edge (admin of its site); the token is shown once."""
    check_site(admin, body.site_id, f"site {body.site_id!r}")
    try:
        edge_id, token = await create_edge_async(engine, body.site_id, body.name)
    except AdminError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    return EdgeCreated(edge_id=edge_id, site_id=body.site_id, token=token)


@router.delete("/edges/{edge_id}/tokens")
async def revoke_edge(edge_id: str, engine: Engine, admin: AdminUser) -> dict[str, int]:
    """Revoke every token of an edge (admin of its site)."""
    async with engine.connect() as conn:
        site_id = await conn.scalar(
            select(ingest_db.edges.c.site_id).where(ingest_db.edges.c.edge_id == edge_id)
        )
    check_site(admin, site_id, f"edge {edge_id!r}")
    return {"revoked": await revoke_edge_tokens_async(engine, edge_id)}
