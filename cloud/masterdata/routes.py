"""Master data: products, locations, lots, items. Viewers read; admins write, import and export."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Select, Table, or_, select
from sqlalchemy.exc import IntegrityError

from cloud.api.body import read_limited_body
from cloud.api.deps import AdminUser, DbConn, Engine, SettingsDep, ViewerUser, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.api.schemas import Page
from cloud.api.sites import AllSitesAdmin, check_site, site_clause
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.masterdata import tables as masterdata_db
from cloud.masterdata.records import ItemRecord, LocationRecord, LotRecord, ProductRecord
from cloud.replenish.schemas import ImportResult

router = APIRouter(prefix="/api/v1", tags=["master data"])
Viewer = [Depends(require_role(Role.viewer))]
KindParam = Literal["products", "locations", "lots", "items"]


async def _page(conn: DbConn, table: Table, query: Select[Any], limit: int, offset: int) -> dict[str, Any]:
    rows, total = await paginate(conn, query, limit, offset)
    return {"items": [{k: v for k, v in r.items() if k != "updated_at"} for r in rows], "total": total}


async def _one(conn: DbConn, table: Table, what: str, **key: str) -> dict[str, Any]:
    row = (
        (await conn.execute(select(table).where(*(table.c[k] == v for k, v in key.items()))))
        .mappings()
        .first()
    )
    if row is None:
        raise ApiError(404, "not_found", f"no {what} {'/'.join(key.values())}")
    return {k: v for k, v in row.items() if k != "updated_at"}


# --- reads ------------------------------------------------------------------------------------------


@router.get("/products", response_model=Page[ProductRecord], dependencies=Viewer)
async def list_products(
    conn: DbConn,
    gtin: str | None = None,
    q: Annotated[str | None, Query(description="substring of SKU or name")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    t = masterdata_db.products
    query = select(t).order_by(t.c.sku)
    if gtin is not None:
        query = query.where(t.c.gtin == gtin.zfill(14))
    if q:
        query = query.where(or_(t.c.sku.contains(q, autoescape=True), t.c.name.contains(q, autoescape=True)))
    return await _page(conn, t, query, limit, offset)


@router.get("/products/{sku}", response_model=ProductRecord, dependencies=Viewer)
async def get_product(conn: DbConn, sku: str) -> dict[str, Any]:
    return await _one(conn, masterdata_db.products, "product", sku=sku)


@router.get("/locations", response_model=Page[LocationRecord], dependencies=Viewer)
async def list_locations(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    kind: str | None = None,
    parent: Annotated[str | None, Query(description="children of this location")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    t = masterdata_db.locations
    query = select(t).order_by(t.c.site_id, t.c.location_id).where(site_clause(user, t.c.site_id, site))
    for column, value in (("kind", kind), ("parent_id", parent)):
        if value is not None:
            query = query.where(t.c[column] == value)
    return await _page(conn, t, query, limit, offset)


@router.get("/locations/{site_id}/{location_id}", response_model=LocationRecord, dependencies=Viewer)
async def get_location(conn: DbConn, user: ViewerUser, site_id: str, location_id: str) -> dict[str, Any]:
    check_site(user, site_id, f"location {site_id}/{location_id}")
    return await _one(conn, masterdata_db.locations, "location", site_id=site_id, location_id=location_id)


# GET /lots (the listing) is served by cloud.lots.routes, mounted first: it accepts the same
# `sku` / `expires_before` / paging parameters and adds shelf-life and FEFO fields.


@router.get("/lots/{sku}/{lot_code}", response_model=LotRecord, dependencies=Viewer)
async def get_lot(conn: DbConn, sku: str, lot_code: str) -> dict[str, Any]:
    return await _one(conn, masterdata_db.lots, "lot", sku=sku, lot_code=lot_code)


@router.get("/items", response_model=Page[ItemRecord], dependencies=Viewer)
async def list_items(
    conn: DbConn, sku: str | None = None, lot: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """Registered items (EPC -> product, lot). ``/items/{epc}`` is one item's trace."""
    t = masterdata_db.items
    query = select(t).order_by(t.c.epc)
    if sku is not None:
        query = query.where(t.c.sku == sku)
    if lot is not None:
        query = query.where(t.c.lot_code == lot)
    return await _page(conn, t, query, limit, offset)


# --- writes (admin) ---------------------------------------------------------------------------------


async def _put(
    engine: Engine, kind: str, record: masterdata_records.Record, path_key: dict[str, str]
) -> masterdata_records.Record:
    for name, value in path_key.items():
        if getattr(record, name) != value:
            raise ApiError(422, "key_mismatch", f"body {name} {getattr(record, name)!r} differs from the URL")
    await md.import_records(engine, kind, [record])
    return record


async def _delete(engine: Engine, kind: str, what: str, **key: str) -> Response:
    try:
        deleted = await md.delete_record(engine, kind, key)
    except IntegrityError as exc:
        raise ApiError(409, "in_use", f"{what} {'/'.join(key.values())} is still referenced") from exc
    if not deleted:
        raise ApiError(404, "not_found", f"no {what} {'/'.join(key.values())}")
    return Response(status_code=204)


@router.put("/products/{sku}", response_model=ProductRecord)
async def put_product(
    sku: str, body: ProductRecord, engine: Engine, _admin: AllSitesAdmin
) -> masterdata_records.Record:
    return await _put(engine, "products", body, {"sku": sku})


@router.delete("/products/{sku}", status_code=204)
async def delete_product(sku: str, engine: Engine, _admin: AllSitesAdmin) -> Response:
    return await _delete(engine, "products", "product", sku=sku)


@router.put("/locations/{site_id}/{location_id}", response_model=LocationRecord)
async def put_location(
    site_id: str, location_id: str, body: LocationRecord, engine: Engine, admin: AdminUser
) -> masterdata_records.Record:
    check_site(admin, site_id, f"site {site_id!r}")
    return await _put(engine, "locations", body, {"site_id": site_id, "location_id": location_id})


@router.delete("/locations/{site_id}/{location_id}", status_code=204)
async def delete_location(site_id: str, location_id: str, engine: Engine, admin: AdminUser) -> Response:
    check_site(admin, site_id, f"location {site_id}/{location_id}")
    return await _delete(engine, "locations", "location", site_id=site_id, location_id=location_id)


@router.put("/lots/{sku}/{lot_code}", response_model=LotRecord)
async def put_lot(
    sku: str, lot_code: str, body: LotRecord, engine: Engine, _admin: AllSitesAdmin
) -> masterdata_records.Record:
    return await _put(engine, "lots", body, {"sku": sku, "lot_code": lot_code})


@router.delete("/lots/{sku}/{lot_code}", status_code=204)
async def delete_lot(sku: str, lot_code: str, engine: Engine, _admin: AllSitesAdmin) -> Response:
    return await _delete(engine, "lots", "lot", sku=sku, lot_code=lot_code)


@router.put("/items/{epc}", response_model=ItemRecord)
async def put_item(
    epc: str, body: ItemRecord, engine: Engine, _admin: AllSitesAdmin
) -> masterdata_records.Record:
    return await _put(engine, "items", body, {"epc": epc.upper()})


@router.delete("/items/{epc}", status_code=204)
async def delete_item(epc: str, engine: Engine, _admin: AllSitesAdmin) -> Response:
    return await _delete(engine, "items", "item", epc=epc.upper())


@router.post("/master/{kind}/import", response_model=ImportResult)
async def import_master(
    kind: KindParam, request: Request, engine: Engine, settings: SettingsDep, _admin: AllSitesAdmin
) -> dict[str, int]:
    """Upsert a whole CSV (``text/csv``) or JSON file; all rows or none."""
    body = await read_limited_body(request, settings.cloud.max_body_bytes)
    fmt: Literal["csv", "json"] = "csv" if "csv" in request.headers.get("content-type", "") else "json"
    try:
        text = body.decode("utf-8-sig")
        count = await md.import_text(engine, kind, text, fmt)
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_master_data", "body is not UTF-8") from exc
    return {"imported": count}


@router.get("/master/{kind}/export", response_class=PlainTextResponse)
async def export_master(
    kind: KindParam, conn: DbConn, _admin: AllSitesAdmin, format: Literal["csv", "json"] = "csv"
) -> PlainTextResponse:
    rows = await md.export_rows(conn, kind)
    if format == "csv":
        return PlainTextResponse(md.render_csv(kind, rows), media_type="text/csv")
    return PlainTextResponse(md.render_json(kind, rows), media_type="application/json")
