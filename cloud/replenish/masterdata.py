"""Replenishment master data and open purchase orders: CSV/JSON import, the master-data way.

Kinds: ``suppliers``, ``product_suppliers``, ``params`` (per product + location) and
``purchase_orders`` (one row per order line; rows sharing a ``po_number`` form one order). Like
:mod:`cloud.masterdata.service`, a file is imported whole or not at all: every row is validated, then
references are checked against the file and the database, and each problem names its row and column.
A purchase order imported again replaces its lines (the ERP is the owner of an order it sends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.ingest.projections import dialect_insert
from cloud.masterdata import tables as masterdata_db
from cloud.masterdata.records import MasterDataError, Problem, read_csv, read_json
from cloud.replenish import tables as rt
from shelfsense.contract import Ident

Kind = Literal["suppliers", "product_suppliers", "params", "purchase_orders", "demand"]
KINDS: tuple[Kind, ...] = ("suppliers", "product_suppliers", "params", "purchase_orders", "demand")

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SupplierRecord(_Record):
    supplier_id: Ident
    name: Annotated[str, Field(max_length=200)] = ""
    lead_time_days: NonNegative = 0.0
    lead_time_std_days: NonNegative = 0.0
    order_weekdays: str = "0,1,2,3,4,5,6"
    moq: NonNegative = 0.0
    order_cost: NonNegative | None = None

    @field_validator("order_weekdays", mode="before")
    @classmethod
    def _weekdays(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if not isinstance(value, str):
            return value
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts or any(p not in "0123456" or len(p) != 1 for p in parts):
            raise ValueError("comma-separated weekday numbers 0 (Monday) .. 6 (Sunday)")
        return ",".join(sorted(set(parts)))


class ProductSupplierRecord(_Record):
    sku: Ident
    supplier_id: Ident
    pack_size: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    unit_cost: NonNegative = 0.0
    moq: NonNegative | None = None
    lead_time_days: NonNegative | None = None
    preferred: bool = False


class ParamsRecord(_Record):
    site_id: Ident
    location_id: Ident
    sku: Ident
    service_level: Annotated[float, Field(gt=0, lt=1)] | None = None
    review_period_days: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    min_qty: NonNegative | None = None
    max_qty: NonNegative | None = None
    reserved: NonNegative = 0.0
    supplier_id: Ident | None = None
    holding_cost_per_unit_year: NonNegative | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> ParamsRecord:
        if self.min_qty is not None and self.max_qty is not None and self.min_qty > self.max_qty:
            raise ValueError("min_qty must not exceed max_qty")
        return self


class PurchaseOrderLineRecord(_Record):
    po_number: Ident
    supplier_id: Ident
    site_id: Ident
    location_id: Ident
    sku: Ident
    quantity: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    received_quantity: NonNegative = 0.0
    unit_cost: NonNegative | None = None
    status: Literal["open", "received", "cancelled"] = "open"
    ordered_at: date | None = None
    expected_date: date
    received_date: date | None = None

    @model_validator(mode="after")
    def _received(self) -> PurchaseOrderLineRecord:
        if self.status == "received" and self.received_date is None:
            raise ValueError("a received order needs received_date")
        return self


class DemandRecord(_Record):
    """Units sold or consumed of a product at a location on one day (UTC): the forecast's history
    where the tags do not show it (sales at a till, consumption in a kitchen)."""

    site_id: Ident
    location_id: Ident
    sku: Ident
    day: date
    quantity: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False, description="units that day")]


Record = SupplierRecord | ProductSupplierRecord | ParamsRecord | PurchaseOrderLineRecord | DemandRecord

MODELS: Mapping[str, type[_Record]] = {
    "suppliers": SupplierRecord,
    "product_suppliers": ProductSupplierRecord,
    "params": ParamsRecord,
    "purchase_orders": PurchaseOrderLineRecord,
    "demand": DemandRecord,
}
KEYS: Mapping[str, tuple[str, ...]] = {
    "suppliers": ("supplier_id",),
    "product_suppliers": ("sku", "supplier_id"),
    "params": ("site_id", "location_id", "sku"),
    "purchase_orders": ("po_number", "sku", "location_id"),
    "demand": ("site_id", "location_id", "sku", "day"),
}
# Fields that must agree on every line of one purchase order.
_ORDER_FIELDS = ("supplier_id", "site_id", "status", "ordered_at", "expected_date", "received_date")


def _model(kind: str) -> type[_Record]:
    try:
        return MODELS[kind]
    except KeyError:
        raise MasterDataError(
            kind, [Problem(None, None, f"unknown kind; use one of {', '.join(KINDS)}")]
        ) from None


def parse_rows(kind: str, raw_rows: Sequence[Mapping[str, Any]]) -> list[Record]:
    """Validate rows into records, collecting every problem (row and column named)."""
    model = _model(kind)
    problems: list[Problem] = []
    records: list[tuple[int, Record]] = []
    for number, raw in enumerate(raw_rows, start=1):
        if not isinstance(raw, Mapping):
            problems.append(Problem(number, None, "a row must be an object"))
            continue
        try:
            records.append((number, model.model_validate(raw)))  # type: ignore[arg-type]
        except ValidationError as exc:
            for error in exc.errors():
                column = ".".join(str(p) for p in error["loc"]) or None
                message = "unknown column" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append(Problem(number, column, message))
    key = KEYS[kind]
    first: dict[tuple[Any, ...], int] = {}
    orders: dict[str, tuple[int, tuple[Any, ...]]] = {}
    for number, record in records:
        value = tuple(getattr(record, k) for k in key)
        if value in first:
            problems.append(Problem(number, key[-1], f"duplicate key {value}, first on row {first[value]}"))
        first.setdefault(value, number)
        if isinstance(record, PurchaseOrderLineRecord):
            header = tuple(getattr(record, f) for f in _ORDER_FIELDS)
            seen = orders.setdefault(record.po_number, (number, header))
            if seen[1] != header:
                problems.append(
                    Problem(number, "po_number", f"order fields differ from its first line on row {seen[0]}")
                )
    if problems:
        raise MasterDataError(kind, sorted(problems, key=lambda p: p.row or 0))
    return [r for _, r in records]


def parse_text(kind: str, text: str, fmt: Literal["csv", "json"]) -> list[Record]:
    return parse_rows(kind, read_csv(text) if fmt == "csv" else read_json(text))


async def _keys(conn: AsyncConnection, table: Table, *columns: str) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in await conn.execute(select(*(table.c[c] for c in columns)))}


async def _check_references(conn: AsyncConnection, kind: str, records: Sequence[Record]) -> None:
    skus = {s for (s,) in await _keys(conn, masterdata_db.products, "sku")}
    suppliers = {s for (s,) in await _keys(conn, rt.suppliers, "supplier_id")}
    locations = await _keys(conn, masterdata_db.locations, "site_id", "location_id")
    problems: list[Problem] = []
    for number, r in enumerate(records, start=1):
        if hasattr(r, "sku") and r.sku not in skus:
            problems.append(Problem(number, "sku", f"unknown product {r.sku!r} (import products first)"))
        supplier = getattr(r, "supplier_id", None)
        if kind != "suppliers" and supplier is not None and supplier not in suppliers:
            problems.append(Problem(number, "supplier_id", f"unknown supplier {supplier!r}"))
        if isinstance(r, ParamsRecord) and (r.site_id, r.location_id) not in locations:
            problems.append(
                Problem(number, "location_id", f"unknown location {r.location_id!r} on site {r.site_id!r}")
            )
    if problems:
        raise MasterDataError(kind, problems)


async def _upsert(
    conn: AsyncConnection, table: Table, key: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    stmt = dialect_insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: stmt.excluded[c] for c in rows[0] if c not in key}
    )
    await conn.execute(stmt, rows)


async def _store_orders(conn: AsyncConnection, records: Sequence[PurchaseOrderLineRecord]) -> None:
    now = db.utcnow()
    po, lines = rt.purchase_orders, rt.purchase_order_lines
    by_number: dict[str, list[PurchaseOrderLineRecord]] = {}
    for r in records:
        by_number.setdefault(r.po_number, []).append(r)
    for number, order_lines in by_number.items():
        head = order_lines[0]
        values = {f: getattr(head, f) for f in _ORDER_FIELDS}
        po_id = await conn.scalar(select(po.c.id).where(po.c.po_number == number))
        if po_id is None:
            po_id = (
                await conn.execute(
                    po.insert()
                    .values(po_number=number, source="import", updated_at=now, **values)
                    .returning(po.c.id)
                )
            ).scalar_one()
        else:
            await conn.execute(po.update().where(po.c.id == po_id).values(updated_at=now, **values))
            await conn.execute(lines.delete().where(lines.c.po_id == po_id))
        await conn.execute(
            lines.insert(),
            [
                {
                    "po_id": po_id,
                    "line_no": i,
                    "sku": r.sku,
                    "location_id": r.location_id,
                    "quantity": r.quantity,
                    "received_quantity": r.received_quantity,
                    "unit_cost": r.unit_cost,
                }
                for i, r in enumerate(order_lines, start=1)
            ],
        )


async def upsert_records(conn: AsyncConnection, kind: str, records: Sequence[Record]) -> int:
    """Check references and write ``records`` on ``conn``'s open transaction."""
    if not records:
        return 0
    await _check_references(conn, kind, records)
    if kind == "purchase_orders":
        await _store_orders(conn, [r for r in records if isinstance(r, PurchaseOrderLineRecord)])
        return len(records)
    table = {
        "suppliers": rt.suppliers,
        "product_suppliers": rt.product_suppliers,
        "demand": rt.demand_history,
    }.get(kind, rt.replenishment_params)
    now = db.utcnow()
    await _upsert(conn, table, KEYS[kind], [{**r.model_dump(), "updated_at": now} for r in records])
    return len(records)


async def import_text(engine: AsyncEngine, kind: str, text: str, fmt: Literal["csv", "json"]) -> int:
    """Parse and import a whole file in one transaction; raises :class:`MasterDataError`."""
    records = parse_text(kind, text, fmt)
    async with db.write_transaction(engine) as conn:
        return await upsert_records(conn, kind, records)


__all__ = [
    "KINDS",
    "ParamsRecord",
    "ProductSupplierRecord",
    "PurchaseOrderLineRecord",
    "SupplierRecord",
    "import_text",
    "parse_rows",
    "parse_text",
    "upsert_records",
]
