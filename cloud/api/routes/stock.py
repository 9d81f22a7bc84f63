"""Stock on hand and the history of one item."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from cloud.api.deps import DbConn, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.core import db
from cloud.core.security import Role
from cloud.schemas import (
    ItemHistory,
    MovementPublic,
    ObservationPublic,
    PassagePublic,
    StockItemPublic,
    StockPage,
)

router = APIRouter(prefix="/api/v1", tags=["stock"], dependencies=[Depends(require_role(Role.viewer))])


@router.get("/stock", response_model=StockPage)
async def list_stock(
    conn: DbConn,
    site: str | None = None,
    location: str | None = None,
    include_gone: Annotated[bool, Query(description="also items that left the site")] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> StockPage:
    t = db.stock_items
    query = select(t).order_by(t.c.site_id, t.c.location, t.c.epc)
    counts = select(t.c.location, func.count()).where(t.c.present.is_(True)).group_by(t.c.location)
    if site is not None:
        query = query.where(t.c.site_id == site)
        counts = counts.where(t.c.site_id == site)
    if location is not None:
        query = query.where(t.c.location == location)
    if not include_gone:
        query = query.where(t.c.present.is_(True))
    rows, total = await paginate(conn, query, limit, offset)
    by_location = {str(loc): int(n) for loc, n in (await conn.execute(counts)).all()}
    return StockPage(
        items=[StockItemPublic.model_validate(r) for r in rows], total=total, by_location=by_location
    )


@router.get("/items/{epc}", response_model=ItemHistory)
async def item_history(
    conn: DbConn, epc: str, limit: Annotated[int, Query(ge=1, le=1000, description="rows per list")] = 100
) -> ItemHistory:
    """Where one tag is and the latest observations, passages and movements of it (newest first)."""
    epc = epc.upper()

    async def latest(table: db.Table, time_column: str) -> list[dict[str, object]]:
        query = (
            select(table).where(table.c.epc == epc).order_by(table.c[time_column].desc(), table.c.id.desc())
        )
        return [dict(r) for r in (await conn.execute(query.limit(limit))).mappings()]

    stock = (await conn.execute(select(db.stock_items).where(db.stock_items.c.epc == epc))).mappings()
    return ItemHistory(
        epc=epc,
        stock=[StockItemPublic.model_validate(r) for r in stock],
        observations=[
            ObservationPublic.model_validate(r) for r in await latest(db.tag_observations, "last_seen")
        ],
        passages=[PassagePublic.model_validate(r) for r in await latest(db.portal_passages, "at")],
        movements=[MovementPublic.model_validate(r) for r in await latest(db.stock_movements, "at")],
    )
