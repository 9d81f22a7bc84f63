"""Stock on hand and the history of one item."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import and_, func, or_, select

from cloud.api.deps import DbConn, ViewerUser, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.api.schemas import Page
from cloud.api.sites import site_clause
from cloud.core import db
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db
from cloud.stock.schemas import (
    ItemHistory,
    MovementPublic,
    MovementRow,
    MovementsPage,
    ObservationPublic,
    PassagePublic,
    PassageRow,
    StockItemPublic,
    StockPage,
)

router = APIRouter(prefix="/api/v1", tags=["stock"], dependencies=[Depends(require_role(Role.viewer))])


@router.get("/stock", response_model=StockPage)
async def list_stock(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    location: str | None = None,
    include_gone: Annotated[bool, Query(description="also items that left the site")] = False,
    product: Annotated[str | None, Query(description="SKU of the registered item")] = None,
    lot: Annotated[str | None, Query(description="lot code of the registered item")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> StockPage:
    t = stock_db.stock_items
    registry = masterdata_db.items.c
    query = (
        select(t, registry.sku, registry.lot_code)
        .select_from(t.outerjoin(masterdata_db.items, registry.epc == t.c.epc))
        .order_by(t.c.site_id, t.c.location, t.c.epc)
    )
    counts = select(t.c.location, func.count()).where(t.c.present.is_(True)).group_by(t.c.location)
    if product is not None or lot is not None:
        registered = select(masterdata_db.items.c.epc)
        if product is not None:
            registered = registered.where(masterdata_db.items.c.sku == product)
        if lot is not None:
            registered = registered.where(masterdata_db.items.c.lot_code == lot)
        query = query.where(t.c.epc.in_(registered))
        counts = counts.where(t.c.epc.in_(registered))
    visible = site_clause(user, t.c.site_id, site)
    query, counts = query.where(visible), counts.where(visible)
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


def _movement_cursor(row: Any) -> str:
    return f"{db.utc(row['at']).isoformat()},{row['id']}"


def _after_cursor(cursor: str) -> Any:
    """Rows after ``cursor`` in the ledger's order (newest first: earlier time, or same time and lower id)."""
    t = stock_db.stock_movements
    try:
        at_text, id_text = cursor.rsplit(",", 1)
        at, row_id = db.utc(datetime.fromisoformat(at_text)), int(id_text)
    except ValueError:
        raise ApiError(422, "invalid_cursor", "cursor: not a value this endpoint returned as next") from None
    return or_(t.c.at < at, and_(t.c.at == at, t.c.id < row_id))


@router.get("/movements", response_model=MovementsPage)
async def list_movements(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    epc: str | None = None,
    location: Annotated[str | None, Query(description="moved from or to this location")] = None,
    reason: Annotated[str | None, Query(description="portal, stocktake, manual or adjustment")] = None,
    edge: str | None = None,
    since: Annotated[datetime | None, Query(description="at or after (naive = UTC)")] = None,
    until: Annotated[datetime | None, Query(description="before (naive = UTC)")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
    cursor: Annotated[str | None, Query(description="the previous page's `next` (instead of offset)")] = None,
) -> MovementsPage:
    """The stock movement ledger, newest first."""
    t = stock_db.stock_movements
    query = select(t).order_by(t.c.at.desc(), t.c.id.desc())
    query = query.where(site_clause(user, t.c.site_id, site))
    for column, value in (("reason", reason), ("edge_id", edge)):
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
    total: int | None = None
    if cursor is None:
        rows, total = await paginate(conn, query, limit, offset)
    else:
        rows = (await conn.execute(query.where(_after_cursor(cursor)).limit(limit))).mappings().all()
    following = _movement_cursor(rows[-1]) if len(rows) == limit else None
    return MovementsPage(items=[MovementRow.model_validate(r) for r in rows], total=total, next=following)


@router.get("/passages", response_model=Page[PassageRow])
async def list_passages(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    portal: str | None = None,
    epc: str | None = None,
    direction: Annotated[Literal["in", "out", "unknown"] | None, Query()] = None,
    unresolved: Annotated[
        bool, Query(description="only direction-unknown passages no stocktake has resolved yet")
    ] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[PassageRow]:
    """Portal passages, newest first. ``unresolved=true``: the direction-unknown ones (one zone
    only, or a portal reader down) that moved no stock and wait for the stocktake."""
    t = stock_db.portal_passages
    query = select(t).order_by(t.c.at.desc(), t.c.id.desc())
    query = query.where(site_clause(user, t.c.site_id, site))
    for column, value in (("portal", portal), ("direction", direction)):
        if value is not None:
            query = query.where(t.c[column] == value)
    if epc is not None:
        query = query.where(t.c.epc == epc.upper())
    if unresolved:
        query = query.where(t.c.direction == "unknown", t.c.resolved_run_id.is_(None))
    rows, total = await paginate(conn, query, limit, offset)
    return Page[PassageRow](items=[PassageRow.model_validate(r) for r in rows], total=total)


@router.get("/items/{epc}", response_model=ItemHistory)
async def item_history(
    conn: DbConn,
    user: ViewerUser,
    epc: str,
    limit: Annotated[int, Query(ge=1, le=1000, description="rows per list")] = 100,
) -> ItemHistory:
    """Where one tag is and the latest observations, passages and movements of it (newest first)."""
    epc = epc.upper()

    async def latest(table: db.Table, time_column: str) -> list[dict[str, object]]:
        query = (
            select(table)
            .where(table.c.epc == epc, site_clause(user, table.c.site_id))
            .order_by(table.c[time_column].desc(), table.c.id.desc())
        )
        return [dict(r) for r in (await conn.execute(query.limit(limit))).mappings()]

    s = stock_db.stock_items
    stock = (await conn.execute(select(s).where(s.c.epc == epc, site_clause(user, s.c.site_id)))).mappings()
    return ItemHistory(
        epc=epc,
        stock=[StockItemPublic.model_validate(r) for r in stock],
        observations=[
            ObservationPublic.model_validate(r) for r in await latest(stock_db.tag_observations, "last_seen")
        ],
        passages=[PassagePublic.model_validate(r) for r in await latest(stock_db.portal_passages, "at")],
        movements=[MovementPublic.model_validate(r) for r in await latest(stock_db.stock_movements, "at")],
    )
