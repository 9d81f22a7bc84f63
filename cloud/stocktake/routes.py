"""Continuous stocktake: runs with per-location results, discrepancies, operator decisions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from cloud.api.deps import DbConn, Engine, OperatorUser, UserPrincipal, ViewerUser, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.api.schemas import Page
from cloud.api.sites import check_site, site_clause
from cloud.core import db
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.stocktake import tables as stocktake_db
from cloud.stocktake.schemas import DiscrepancyPublic, StocktakeRunDetail, StocktakeRunPublic
from cloud.stocktake.service import StocktakeOptions, decide, run_all_sites, run_site

router = APIRouter(prefix="/api/v1", tags=["stocktakes"])
Viewer = [Depends(require_role(Role.viewer))]


async def _locations(
    conn: DbConn, run_ids: list[int], location: str | None
) -> dict[int, list[dict[str, Any]]]:
    t = stocktake_db.stocktake_locations
    query = select(t).where(t.c.run_id.in_(run_ids)).order_by(t.c.run_id, t.c.location)
    if location is not None:
        query = query.where(t.c.location == location)
    out: dict[int, list[dict[str, Any]]] = {}
    for row in (await conn.execute(query)).mappings():
        out.setdefault(row["run_id"], []).append(dict(row))
    return out


@router.get("/stocktakes", response_model=Page[StocktakeRunPublic], dependencies=Viewer)
async def list_runs(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    location: Annotated[str | None, Query(description="only runs covering this location")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Stocktake runs, newest first, each with its per-location results."""
    r = stocktake_db.stocktake_runs
    query = select(r).order_by(r.c.id.desc()).where(site_clause(user, r.c.site_id, site))
    if location is not None:
        t = stocktake_db.stocktake_locations
        query = query.where(r.c.id.in_(select(t.c.run_id).where(t.c.location == location)))
    rows, total = await paginate(conn, query, limit, offset)
    locations = await _locations(conn, [row["id"] for row in rows], location)
    items = [{**row, "locations": locations.get(row["id"], [])} for row in rows]
    return {"items": items, "total": total}


@router.get("/stocktakes/discrepancies", response_model=Page[DiscrepancyPublic], dependencies=Viewer)
async def list_discrepancies(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    location: Annotated[str | None, Query(description="observed or book location")] = None,
    kind: str | None = None,
    status: Annotated[str | None, Query(description="open, dismissed, accepted, resolved")] = "open",
    epc: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    d = stocktake_db.stocktake_discrepancies
    query = select(d).order_by(d.c.id).where(site_clause(user, d.c.site_id, site))
    for column, value in (
        ("kind", kind),
        ("status", status),
        ("epc", epc and epc.upper()),
    ):
        if value is not None:
            query = query.where(d.c[column] == value)
    if location is not None:
        query = query.where((d.c.location == location) | (d.c.book_location == location))
    rows, total = await paginate(conn, query, limit, offset)
    return {"items": [dict(r) for r in rows], "total": total}


@router.get("/stocktakes/{run_id}", response_model=StocktakeRunDetail, dependencies=Viewer)
async def get_run(conn: DbConn, user: ViewerUser, run_id: int) -> dict[str, Any]:
    """One run with the discrepancies it saw and the ones it no longer saw (its delta)."""
    r, d = stocktake_db.stocktake_runs, stocktake_db.stocktake_discrepancies
    row = (await conn.execute(select(r).where(r.c.id == run_id))).mappings().first()
    if row is None:
        raise ApiError(404, "not_found", f"no stocktake run {run_id}")
    check_site(user, row["site_id"], f"stocktake run {run_id}")
    current = (
        await conn.execute(
            select(d)
            .where(d.c.first_run_id <= run_id, d.c.last_run_id >= run_id, d.c.site_id == row["site_id"])
            .order_by(d.c.id)
        )
    ).mappings()
    current_rows = [dict(x) for x in current]
    resolved = (
        await conn.execute(select(d).where(d.c.resolved_run_id == run_id).order_by(d.c.id))
    ).mappings()
    locations = await _locations(conn, [run_id], None)
    return {
        **row,
        "locations": locations.get(run_id, []),
        "current": current_rows,
        "resolved": [dict(x) for x in resolved],
    }


@router.post("/stocktakes/run", response_model=list[int])
async def run_now(request: Request, engine: Engine, operator: OperatorUser) -> list[int]:
    """Reconcile every covered site (of the operator's) now, for the window ending now."""
    options: StocktakeOptions = request.app.state.stocktake
    if operator.sites is None:
        return await run_all_sites(engine, db.utcnow(), options)
    runs = [await run_site(engine, site, db.utcnow(), options) for site in sorted(operator.sites)]
    return [run for run in runs if run is not None]


async def _decide(engine: Engine, discrepancy_id: int, decision: str, user: UserPrincipal) -> dict[str, Any]:
    d = stocktake_db.stocktake_discrepancies
    async with engine.connect() as conn:
        site_id = await conn.scalar(select(d.c.site_id).where(d.c.id == discrepancy_id))
    if site_id is None:
        raise ApiError(404, "not_found", f"no discrepancy {discrepancy_id}")
    check_site(user, site_id, f"discrepancy {discrepancy_id}")
    return await decide(engine, discrepancy_id, decision, user.name)


@router.post("/stocktakes/discrepancies/{discrepancy_id}/accept", response_model=DiscrepancyPublic)
async def accept(discrepancy_id: int, engine: Engine, operator: OperatorUser) -> dict[str, Any]:
    """Accept: post the stock movement that makes the book match what was observed."""
    return await _decide(engine, discrepancy_id, "accept", operator)


@router.post("/stocktakes/discrepancies/{discrepancy_id}/dismiss", response_model=DiscrepancyPublic)
async def dismiss(discrepancy_id: int, engine: Engine, operator: OperatorUser) -> dict[str, Any]:
    """Dismiss: keep the book; the episode stays dismissed while later runs still see it."""
    return await _decide(engine, discrepancy_id, "dismiss", operator)
