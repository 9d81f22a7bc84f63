"""Master data: products, locations, lots and items; parsing, validation, import and export.

Import is all-or-nothing per file: every row is parsed and checked (field formats, then references
against the file itself plus what the database already holds) and only when no row has a problem
is the whole file upserted in one transaction. Each problem names its row (1-based data row; the
CSV header is not a row) and column, so a person can fix the file without guessing.

Keys: products by ``sku``; locations by ``(site_id, location_id)`` with an optional ``parent_id`` in
the same site (a tree: cycles are refused); lots by ``(sku, lot_code)``; items by ``epc``."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import csvsafe, db
from cloud.ingest.projections import dialect_insert
from cloud.lots.marks import mark_master
from cloud.masterdata import tables as masterdata_db
from cloud.masterdata.records import (
    KINDS,
    REPLENISH_KINDS,
    ItemRecord,
    LocationRecord,
    LotRecord,
    MasterDataError,
    Problem,
    ProductRecord,
    Record,
    format_of,
    parse_text,
    spec,
)
from cloud.stock import zone_stock
from cloud.users import tables as users_db
from shelfsense.output import progress_step


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
    "delete_record",
    "export_dir",
    "export_dir_sync",
    "export_rows",
    "import_file",
    "import_file_sync",
    "import_records",
    "import_text",
    "render_csv",
    "render_json",
]
