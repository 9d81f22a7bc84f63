"""Master data: products, locations, lots and items; parsing, validation, import and export.

Import is all-or-nothing per file: every row is parsed and checked (field formats, then references
against the file itself plus what the database already holds) and only when no row has a problem
is the whole file upserted in one transaction. Each problem names its row (1-based data row; the
CSV header is not a row) and column, so a person can fix the file without guessing.

Keys: products by ``sku``; locations by ``(site_id, location_id)`` with an optional ``parent_id`` in
the same site (a tree: cycles are refused); lots by ``(sku, lot_code)``; items by ``epc``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.coldchain.mkt import MAX_ACTIVATION_ENERGY_KJ, MIN_ACTIVATION_ENERGY_KJ
from cloud.core import csvsafe, db
from cloud.core.errors import CloudError
from cloud.epcis.uris import gln_valid
from cloud.ingest.projections import dialect_insert
from cloud.lots.marks import mark_master
from cloud.masterdata import tables as masterdata_db
from cloud.stock import zone_stock
from cloud.users import tables as users_db
from shelfsense.contract import EPC_PATTERN, Ident
from shelfsense.output import progress_step

MAX_REPORTED_PROBLEMS = 50
Kind = Literal["products", "locations", "lots", "items"]
KINDS: tuple[Kind, ...] = ("products", "locations", "lots", "items")
# Replenishment data (cloud.replenish.masterdata) imported from files through import_file too.
REPLENISH_KINDS = ("suppliers", "product_suppliers", "params", "purchase_orders", "demand")


@dataclass(frozen=True, slots=True)
class Problem:
    row: int | None  # 1-based data row; None for file-level problems
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"row {self.row}" if self.row is not None else "file"]
        if self.column:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}"


class MasterDataError(CloudError):
    """A master-data file or record was refused; nothing was written."""

    def __init__(self, kind: str, problems: Sequence[Problem]) -> None:
        self.kind = kind
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:MAX_REPORTED_PROBLEMS])
        more = len(self.problems) - MAX_REPORTED_PROBLEMS
        super().__init__(f"{kind}: {shown}" + (f" (and {more} more)" if more > 0 else ""))


# --- records ----------------------------------------------------------------------------------------


def gtin_check_digit_ok(gtin: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-8/12/13/14."""
    digits = [int(c) for c in gtin]
    body, check = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ProductRecord(_Record):
    sku: Ident
    gtin: str | None = Field(default=None, description="GTIN-8/12/13/14, stored as 14 digits")
    name: Annotated[str, Field(max_length=200)] = ""
    shelf_life_days: Annotated[int | None, Field(ge=0, le=36500)] = None
    storage_temp_min_c: float | None = Field(default=None, ge=-273.15, le=1000)
    storage_temp_max_c: float | None = Field(default=None, ge=-273.15, le=1000)
    # Shelf-life model (cloud.lots.service): how fast the product ages with temperature. Empty =
    # Arrhenius at 83.144 kJ/mol, shelf_life_days holding at the middle of the storage range.
    shelf_life_model: Literal["arrhenius", "q10"] | None = None
    activation_energy_kj: float | None = Field(
        default=None, ge=MIN_ACTIVATION_ENERGY_KJ, le=MAX_ACTIVATION_ENERGY_KJ
    )
    q10: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)
    reference_temp_c: float | None = Field(default=None, gt=-273.15, le=1000)

    @field_validator("gtin")
    @classmethod
    def _gtin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.isdigit() or len(value) not in (8, 12, 13, 14):
            raise ValueError("a GTIN has 8, 12, 13 or 14 digits")
        if not gtin_check_digit_ok(value):
            raise ValueError("GTIN check digit is wrong")
        return value.zfill(14)

    @model_validator(mode="after")
    def _range(self) -> ProductRecord:
        low, high = self.storage_temp_min_c, self.storage_temp_max_c
        if low is not None and high is not None and low >= high:
            raise ValueError("storage_temp_min_c must be below storage_temp_max_c")
        return self


class LocationRecord(_Record):
    site_id: Ident
    location_id: Ident
    kind: Literal["site_area", "zone", "shelf", "cold_room", "dock"]
    parent_id: Ident | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    rfid_coverage: bool = False
    # GS1 GLN of the place (EPCIS exports it as an SGLN URI and resolves captured events by it):
    # 13 digits, how many of them are the company prefix, and the SGLN extension ("0" = none).
    gln: str | None = Field(default=None, description="GLN-13 with check digit")
    gcp_length: Annotated[int | None, Field(ge=6, le=12, description="digits of the company prefix")] = None
    gln_extension: Annotated[str | None, Field(pattern=r"^[0-9A-Za-z]{1,20}$")] = None

    @field_validator("gln")
    @classmethod
    def _gln(cls, value: str | None) -> str | None:
        if value is not None and not gln_valid(value):
            raise ValueError("a GLN has 13 digits with a valid GS1 check digit")
        return value

    @model_validator(mode="after")
    def _gln_complete(self) -> LocationRecord:
        if (self.gln is None) != (self.gcp_length is None):
            raise ValueError("gln and gcp_length go together (the SGLN URI needs the company prefix)")
        if self.gln is None and self.gln_extension is not None:
            raise ValueError("gln_extension needs a gln")
        if self.gln is not None and self.gln_extension is None:
            return self.model_copy(update={"gln_extension": "0"})
        return self


class LotRecord(_Record):
    sku: Ident
    lot_code: Ident
    expiry: date | None = None


class ItemRecord(_Record):
    epc: Annotated[str, Field(pattern=EPC_PATTERN)]
    sku: Ident
    lot_code: Ident | None = None

    @field_validator("epc", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


Record = ProductRecord | LocationRecord | LotRecord | ItemRecord


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: Kind
    table: Table
    model: type[_Record]
    key: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return list(self.model.model_fields)


SPECS: Mapping[str, KindSpec] = {
    "products": KindSpec("products", masterdata_db.products, ProductRecord, ("sku",)),
    "locations": KindSpec("locations", masterdata_db.locations, LocationRecord, ("site_id", "location_id")),
    "lots": KindSpec("lots", masterdata_db.lots, LotRecord, ("sku", "lot_code")),
    "items": KindSpec("items", masterdata_db.items, ItemRecord, ("epc",)),
}


def spec(kind: str) -> KindSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise MasterDataError(
            kind, [Problem(None, None, f"unknown kind; use one of {', '.join(KINDS)}")]
        ) from None


# --- parsing ----------------------------------------------------------------------------------------


def parse_rows(kind: str, raw_rows: Sequence[Mapping[str, Any]]) -> list[Record]:
    """Validate raw rows into records, collecting every problem (row and column named)."""
    model = spec(kind).model
    problems: list[Problem] = []
    numbered: list[tuple[int, Record]] = []
    for number, raw in enumerate(raw_rows, start=1):
        if not isinstance(raw, Mapping):
            problems.append(Problem(number, None, "a row must be an object"))
            continue
        try:
            numbered.append((number, model.model_validate(raw)))  # type: ignore[arg-type]
        except ValidationError as exc:
            for error in exc.errors():
                column = ".".join(str(p) for p in error["loc"]) or None
                message = "unknown column" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append(Problem(number, column, message))
    _check_duplicate_keys(kind, numbered, problems)
    if problems:
        raise MasterDataError(kind, sorted(problems, key=lambda p: p.row or 0))
    return [record for _, record in numbered]


def _check_duplicate_keys(kind: str, numbered: Sequence[tuple[int, Record]], problems: list[Problem]) -> None:
    key = spec(kind).key
    first_row: dict[tuple[Any, ...], int] = {}
    for number, record in numbered:
        value = tuple(getattr(record, k) for k in key)
        if value in first_row:
            problems.append(
                Problem(number, key[-1], f"duplicate key {value}, first on row {first_row[value]}")
            )
        else:
            first_row[value] = number


def read_csv(text: str) -> list[dict[str, Any]]:
    """CSV with a header row; empty cells mean "not given" (the field's default / NULL)."""
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            if None in row:  # more cells than header columns
                row = {k: v for k, v in row.items() if k is not None}
                row["(extra cells)"] = "?"
            rows.append({k: csvsafe.restore_cell(v) for k, v in row.items() if v not in ("", None)})
    except csv.Error as exc:  # a cell past the field size limit, a NUL byte
        raise MasterDataError("file", [Problem(reader.line_num, None, f"not valid CSV: {exc}")]) from exc
    return rows


def read_json(text: str) -> list[dict[str, Any]]:
    """A JSON list of objects, or an object with an ``items`` list (our export format)."""
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
        raise MasterDataError("file", [Problem(None, None, f"not valid JSON: {exc}")]) from exc
    except RecursionError as exc:
        raise MasterDataError("file", [Problem(None, None, "JSON is nested too deeply")]) from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise MasterDataError("file", [Problem(None, None, "JSON must be a list of objects")])
    return data


def parse_text(kind: str, text: str, fmt: Literal["csv", "json"]) -> list[Record]:
    return parse_rows(kind, read_csv(text) if fmt == "csv" else read_json(text))


def format_of(path: Path) -> Literal["csv", "json"]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    raise MasterDataError("file", [Problem(None, None, f"{path.name}: use a .csv or .json file")])


# --- references -------------------------------------------------------------------------------------


async def _existing(conn: AsyncConnection, table: Table, columns: Sequence[str]) -> set[tuple[Any, ...]]:
    rows = await conn.execute(select(*(table.c[c] for c in columns)))
    return {tuple(r) for r in rows}


async def check_references(conn: AsyncConnection, kind: str, records: Sequence[Record]) -> None:
    """Every reference resolves (file + database) and location trees have no cycles."""
    problems: list[Problem] = []
    if kind == "products":
        gtins = {g: s for s, g in await _existing(conn, masterdata_db.products, ["sku", "gtin"]) if g}
        mine = {r.sku for r in records if isinstance(r, ProductRecord)}
        for number, r in enumerate(records, start=1):
            assert isinstance(r, ProductRecord)
            owner = gtins.get(r.gtin) if r.gtin else None
            if owner is not None and owner != r.sku and owner not in mine:
                problems.append(
                    Problem(number, "gtin", f"GTIN {r.gtin} already belongs to product {owner!r}")
                )
        seen: dict[str, int] = {}
        for number, r in enumerate(records, start=1):
            assert isinstance(r, ProductRecord)
            if r.gtin and r.gtin in seen:
                problems.append(Problem(number, "gtin", f"GTIN {r.gtin} also on row {seen[r.gtin]}"))
            elif r.gtin:
                seen[r.gtin] = number
    elif kind == "locations":
        problems += await _check_locations(conn, [r for r in records if isinstance(r, LocationRecord)])
    elif kind == "lots":
        skus = {s for (s,) in await _existing(conn, masterdata_db.products, ["sku"])}
        for number, r in enumerate(records, start=1):
            assert isinstance(r, LotRecord)
            if r.sku not in skus:
                problems.append(Problem(number, "sku", f"unknown product {r.sku!r} (import products first)"))
    elif kind == "items":
        skus = {s for (s,) in await _existing(conn, masterdata_db.products, ["sku"])}
        lot_keys = await _existing(conn, masterdata_db.lots, ["sku", "lot_code"])
        for number, r in enumerate(records, start=1):
            assert isinstance(r, ItemRecord)
            if r.sku not in skus:
                problems.append(Problem(number, "sku", f"unknown product {r.sku!r}"))
            elif r.lot_code is not None and (r.sku, r.lot_code) not in lot_keys:
                problems.append(
                    Problem(number, "lot_code", f"unknown lot {r.lot_code!r} of product {r.sku!r}")
                )
    if problems:
        raise MasterDataError(kind, problems)


async def _check_locations(conn: AsyncConnection, records: Sequence[LocationRecord]) -> list[Problem]:
    parents: dict[tuple[str, str], str | None] = {
        (s, loc): p
        for s, loc, p in await _existing(
            conn, masterdata_db.locations, ["site_id", "location_id", "parent_id"]
        )
    }
    for r in records:
        parents[(r.site_id, r.location_id)] = r.parent_id
    problems = []
    for number, r in enumerate(records, start=1):
        if r.parent_id is None:
            continue
        if (r.site_id, r.parent_id) not in parents:
            problems.append(
                Problem(number, "parent_id", f"unknown location {r.parent_id!r} on site {r.site_id!r}")
            )
            continue
        seen = {r.location_id}
        current: str | None = r.parent_id
        while current is not None:
            if current in seen:
                problems.append(Problem(number, "parent_id", f"{r.location_id!r} would be its own ancestor"))
                break
            seen.add(current)
            current = parents.get((r.site_id, current))
    return problems


# --- store ------------------------------------------------------------------------------------------


async def _ensure_sites(conn: AsyncConnection, site_ids: Iterable[str]) -> None:
    wanted = set(site_ids)
    if not wanted:
        return
    known = {
        s
        for (s,) in await conn.execute(
            select(users_db.sites.c.site_id).where(users_db.sites.c.site_id.in_(wanted))
        )
    }
    missing = [{"site_id": s, "created_at": db.utcnow()} for s in sorted(wanted - known)]
    if missing:
        await conn.execute(users_db.sites.insert(), missing)


async def upsert_records(conn: AsyncConnection, kind: str, records: Sequence[Record]) -> int:
    """Validate references and upsert ``records`` on ``conn``'s open transaction."""
    if not records:
        return 0
    await check_references(conn, kind, records)
    kind_spec = spec(kind)
    now = db.utcnow()
    rows = [{**r.model_dump(), "updated_at": now} for r in records]
    await mark_master(conn, kind, rows)  # the lot read model recomputes what this changes
    if kind == "items":
        await zone_stock.before_items_upsert(conn, rows)  # present items count under their product
    if kind == "locations":
        await _ensure_sites(conn, (r["site_id"] for r in rows))
        # Parents before children, so the self-referencing foreign key holds at every insert.
        rows = _parents_first(rows)
    stmt = dialect_insert(conn, kind_spec.table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(kind_spec.key),
        set_={c: stmt.excluded[c] for c in rows[0] if c not in kind_spec.key},
    )
    chunk = 1 if kind == "locations" else 500  # locations: order matters for the self-reference
    for start in range(0, len(rows), chunk):
        await conn.execute(stmt, rows[start : start + chunk])
        progress_step(f"import {kind}", min(start + chunk, len(rows)), len(rows))
    return len(rows)


def _parents_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(r["site_id"], r["location_id"]): r for r in rows}
    ordered: list[dict[str, Any]] = []
    done: set[tuple[str, str]] = set()

    def visit(key: tuple[str, str]) -> None:
        if key in done or key not in by_key:
            return
        done.add(key)  # cycles were refused before; this only guards recursion
        parent = by_key[key]["parent_id"]
        if parent is not None:
            visit((key[0], parent))
        ordered.append(by_key[key])

    for key in by_key:
        visit(key)
    return ordered


async def import_records(engine: AsyncEngine, kind: str, records: Sequence[Record]) -> int:
    """Upsert validated records in one transaction; raises :class:`MasterDataError`, writing nothing."""
    async with db.write_transaction(engine) as conn:
        return await upsert_records(conn, kind, records)


async def import_text(engine: AsyncEngine, kind: str, text: str, fmt: Literal["csv", "json"]) -> int:
    return await import_records(engine, kind, parse_text(kind, text, fmt))


async def import_file(engine: AsyncEngine, kind: str, path: Path) -> int:
    fmt = format_of(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MasterDataError(kind, [Problem(None, None, f"cannot read {path}: {exc}")]) from exc
    if kind in REPLENISH_KINDS:
        # Imported here: cloud.replenish.masterdata builds on this module.
        from cloud.replenish.masterdata import import_text as import_replenish_text

        return await import_replenish_text(engine, kind, text, fmt)
    return await import_text(engine, kind, text, fmt)


async def export_rows(conn: AsyncConnection, kind: str) -> list[dict[str, Any]]:
    kind_spec = spec(kind)
    table = kind_spec.table
    query = select(*(table.c[c] for c in kind_spec.columns)).order_by(*(table.c[k] for k in kind_spec.key))
    return [dict(r) for r in (await conn.execute(query)).mappings()]


def render_csv(kind: str, rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csvsafe.DictWriter(out, fieldnames=spec(kind).columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else _csv_value(v)) for k, v in row.items()})
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return value


def render_json(kind: str, rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"kind": kind, "items": list(rows)}, indent=2, default=str) + "\n"


async def export_dir(engine: AsyncEngine, directory: Path, fmt: Literal["csv", "json"] = "csv") -> list[Path]:
    """Write ``<kind>.<fmt>`` for every kind (in import order); returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    async with engine.connect() as conn:
        for kind in KINDS:
            rows = await export_rows(conn, kind)
            path = directory / f"{kind}.{fmt}"
            _write_no_follow(path, render_csv(kind, rows) if fmt == "csv" else render_json(kind, rows))
            written.append(path)
            progress_step("export", len(written), len(KINDS))
    return written


def _write_no_follow(path: Path, text: str) -> None:
    """Write ``path``, refusing a symlink there: an export must never overwrite what a link
    points at (``O_NOFOLLOW`` makes the refusal atomic, no check-then-open race)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise MasterDataError(
                "file", [Problem(None, None, f"{path} is a symlink: not followed")]
            ) from exc
        raise MasterDataError("file", [Problem(None, None, f"cannot write {path}: {exc.strerror}")]) from exc
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


async def delete_record(engine: AsyncEngine, kind: str, key: Mapping[str, Any]) -> bool:
    """Delete one record by key; raises IntegrityError (from the database) when still referenced."""
    kind_spec = spec(kind)
    table = kind_spec.table
    async with db.write_transaction(engine) as conn:
        await mark_master(conn, kind, [key])
        result = await conn.execute(table.delete().where(*(table.c[k] == key[k] for k in kind_spec.key)))
    return result.rowcount > 0


async def master_item_index(conn: AsyncConnection, epcs: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """``epc -> (sku, lot_code)`` for the registered items among ``epcs``."""
    wanted = list(set(epcs))
    found: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        rows = await conn.execute(
            select(
                masterdata_db.items.c.epc, masterdata_db.items.c.sku, masterdata_db.items.c.lot_code
            ).where(masterdata_db.items.c.epc.in_(chunk))
        )
        found.update({epc: (sku, lot) for epc, sku, lot in rows})
    return found


def _run_on(db_url: str, operation: Any) -> Any:
    async def main() -> Any:
        from cloud.core.migrate import ensure_schema

        engine = db.create_engine(db_url)
        try:
            await ensure_schema(engine)
            return await operation(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def import_file_sync(db_url: str, kind: str, path: Path) -> int:
    """``shelfsense cloud import``: the number of rows upserted; raises :class:`MasterDataError`."""
    count: int = _run_on(db_url, lambda engine: import_file(engine, kind, path))
    return count


def export_dir_sync(db_url: str, directory: Path, fmt: Literal["csv", "json"] = "csv") -> list[Path]:
    """``shelfsense cloud export``: the files written."""
    paths: list[Path] = _run_on(db_url, lambda engine: export_dir(engine, directory, fmt))
    return paths


__all__ = [
    "KINDS",
    "SPECS",
    "ItemRecord",
    "LocationRecord",
    "LotRecord",
    "MasterDataError",
    "Problem",
    "ProductRecord",
    "delete_record",
    "export_dir",
    "export_dir_sync",
    "export_rows",
    "gtin_check_digit_ok",
    "import_file",
    "import_file_sync",
    "import_records",
    "import_text",
    "parse_rows",
    "parse_text",
    "render_csv",
    "render_json",
]
