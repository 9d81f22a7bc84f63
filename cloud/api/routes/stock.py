"""Stock on hand and the history of one item."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, or_, select

from cloud.api.deps import DbConn, require_role
from cloud.api.pagination import Cursor, Limit, Offset, count_rows, encode_cursor, keyset_page, paginate
from cloud.core import db
from cloud.core.security import Role
from cloud.schemas import (
    CursorPage,
    ItemHistory,
    MovementPublic,
    MovementRow,
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
    product: Annotated[str | None, Query(description="SKU of the registered item")] = None,
    lot: Annotated[str | None, Query(description="lot code of the registered item")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> StockPage:
    t = db.stock_items
    registry = db.items.c
    query = (
        select(t, registry.sku, registry.lot_code)
        .select_from(t.outerjoin(db.items, registry.epc == t.c.epc))
        .order_by(t.c.site_id, t.c.location, t.c.epc)
    )
    counts = select(t.c.location, func.count()).where(t.c.present.is_(True)).group_by(t.c.location)
    if product is not None or lot is not None:
        registered = select(db.items.c.epc)
        if product is not None:
            registered = registered.where(db.items.c.sku == product)
        if lot is not None:
            registered = registered.where(db.items.c.lot_code == lot)
        query = query.where(t.c.epc.in_(registered))
        counts = counts.where(t.c.epc.in_(registered))
    if site is not None:
        query = query.where(t.c.site_id == site)
        counts = counts.where(t.c.site_id == site)
    if location is not None:
        query = query.where(t.c.location == location)
        counts = counts.where(t.c.location == location)
    if not include_gone:
        query = query.where(t.c.present.is_(True))
    rows, total = await paginate(conn, query, limit, offset)
    by_location = {str(loc): int(n) for loc, n in (await conn.execute(counts)).all()}
    return StockPage(
        items=[StockItemPublic.model_validate(r) for r in rows], total=total, by_location=by_location
    )


@router.get("/movements", response_model=CursorPage[MovementRow])
async def list_movements(
    conn: DbConn,
    site: str | None = None,
    epc: str | None = None,
    location: Annotated[str | None, Query(description="moved from or to this location")] = None,
    reason: Annotated[str | None, Query(description="portal, stocktake, manual or adjustment")] = None,
    edge: str | None = None,
    since: Annotated[datetime | None, Query(description="at or after (naive = UTC)")] = None,
    until: Annotated[datetime | None, Query(description="before (naive = UTC)")] = None,
    limit: Limit = 100,
    offset: Annotated[int, Query(ge=0, description="rows to skip (prefer `cursor`)")] = 0,
    cursor: Cursor = None,
) -> CursorPage[MovementRow]:
    """The stock movement ledger, newest first (by time, then id). Page with ``cursor``: each page
    gives ``next_cursor``, exact even while movements arrive (an offset shifts with new rows)."""
    t = db.stock_movements
    query = select(t).order_by(t.c.at.desc(), t.c.id.desc())
    for column, value in (("site_id", site), ("reason", reason), ("edge_id", edge)):
        if value is not None:
            query = query.where(t.c[column] == value)
    if epc is not None:
        query = query.where(t.c.epc == epc.upper())
    if location is not None:
        query = query.where(or_(t.c.from_location == location, t.c.to_location == location))
    if since is not None:
        query = query.where(t.c.at >= db.utc(since))
    if until is not None:
        query = query.where(t.c.at < db.utc(until))
    total = await count_rows(conn, query)
    if offset and cursor is None:
        rows, _ = await paginate(conn, query, limit, offset)
        more = offset + len(rows) < total and rows
        next_cursor = encode_cursor([rows[-1]["at"], rows[-1]["id"]]) if more else None
    else:
        rows, next_cursor = await keyset_page(conn, query, (t.c.at, t.c.id), (datetime, int), cursor, limit)
    items = [MovementRow.model_validate(r) for r in rows]
    return CursorPage[MovementRow](items=items, total=total, next_cursor=next_cursor)


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
