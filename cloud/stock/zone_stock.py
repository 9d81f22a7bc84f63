"""How many items of each product each location holds, kept current as stock moves.

The ingest transaction judges a zone's readings by the strictest storage temperatures of the
products present there (:func:`cloud.coldchain.service.product_limits`). Finding those products
from ``stock_items`` meant joining every on-hand item of the site in the write transaction; this
table (``zone_products``, revision 0015) is the same answer as counts, changed by each stock upsert
(the batch's own items only) and by item registrations, so the per-batch read is a few index rows
per zone. :func:`recount` is the full recomputation, for the property test and the migration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain.evidence_tables import zone_products
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db

CHUNK = 2000

Key = tuple[str, str, str]  # (site, location, sku)


async def _current(conn: AsyncConnection, site_id: str, epcs: Sequence[str]) -> dict[str, Any]:
    s = stock_db.stock_items
    found: dict[str, Any] = {}
    for start in range(0, len(epcs), CHUNK):
        query = select(s.c.epc, s.c.location, s.c.present, s.c.updated_at).where(
            s.c.site_id == site_id, s.c.epc.in_(epcs[start : start + CHUNK])
        )
        found.update({r.epc: r for r in await conn.execute(query)})
    return found


async def _skus(conn: AsyncConnection, epcs: Iterable[str]) -> dict[str, str]:
    wanted, i = sorted(set(epcs)), masterdata_db.items
    found: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        query = select(i.c.epc, i.c.sku).where(i.c.epc.in_(wanted[start : start + CHUNK]))
        found.update({epc: sku for epc, sku in await conn.execute(query)})
    return found


async def add(conn: AsyncConnection, deltas: Mapping[Key, int]) -> None:
    """Add ``deltas`` to the counts (one upsert per changed key)."""
    changed = [
        {"site_id": k[0], "location": k[1], "sku": k[2], "items": n} for k, n in sorted(deltas.items()) if n
    ]
    if not changed:
        return
    from cloud.ingest.projections import dialect_insert

    z = zone_products

    stmt = dialect_insert(conn, z)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "location", "sku"], set_={"items": z.c["items"] + stmt.excluded["items"]}
    )
    await conn.execute(stmt, changed)


async def before_stock_upsert(
    conn: AsyncConnection, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Count the moves an upsert of ``stock_items`` rows is about to apply (same guard: a row
    applies when its time is not older than the stored one). Called before the upsert."""
    from cloud.ingest.projections import stamp_for

    col = {n: k for k, n in enumerate(names)}
    stamp = stamp_for(conn.dialect.name)
    deltas: Counter[Key] = Counter()
    by_site: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_site.setdefault(row[col["site_id"]], []).append(row)
    for site_id, site_rows in by_site.items():
        epcs = [r[col["epc"]] for r in site_rows]
        current = await _current(conn, site_id, epcs)
        skus = await _skus(conn, epcs)
        for row in site_rows:
            epc = row[col["epc"]]
            sku = skus.get(epc)
            old = current.get(epc)
            if sku is None or (old is not None and stamp(old.updated_at) > row[col["updated_at"]]):
                continue
            if old is not None and old.present and old.location is not None:
                deltas[(site_id, old.location, sku)] -= 1
            if row[col["present"]] and row[col["location"]] is not None:
                deltas[(site_id, row[col["location"]], sku)] += 1
    await add(conn, deltas)


async def before_items_upsert(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """An item registered or given another product: move its present stock's count to the new SKU."""
    epcs = [r["epc"] for r in rows]
    new_sku = {r["epc"]: r["sku"] for r in rows}
    old_sku = await _skus(conn, epcs)
    s = stock_db.stock_items
    deltas: Counter[Key] = Counter()
    for start in range(0, len(epcs), CHUNK):
        query = select(s.c.site_id, s.c.epc, s.c.location).where(
            s.c.epc.in_(epcs[start : start + CHUNK]), s.c.present.is_(True), s.c.location.is_not(None)
        )
        for site_id, epc, location in await conn.execute(query):
            before, after = old_sku.get(epc), new_sku.get(epc)
            if before == after:
                continue
            if before is not None:
                deltas[(site_id, location, before)] -= 1
            if after is not None:
                deltas[(site_id, location, after)] += 1
    await add(conn, deltas)


async def recount(conn: AsyncConnection) -> dict[Key, int]:
    """The counts from scratch: every present item joined with its product (the oracle)."""
    s, i = stock_db.stock_items, masterdata_db.items
    query = (
        select(s.c.site_id, s.c.location, i.c.sku, func.count())
        .join(i, i.c.epc == s.c.epc)
        .where(s.c.present.is_(True), s.c.location.is_not(None))
        .group_by(s.c.site_id, s.c.location, i.c.sku)
    )
    return {(site, loc, sku): int(n) for site, loc, sku, n in await conn.execute(query)}


async def stored(conn: AsyncConnection) -> dict[Key, int]:
    z = zone_products
    rows = await conn.execute(
        select(z.c.site_id, z.c.location, z.c.sku, z.c["items"]).where(z.c["items"] != 0)
    )
    return {(site, loc, sku): int(n) for site, loc, sku, n in rows}


def products_in(site_id: str, locations: Iterable[str]) -> Any:
    """``(location, sku)`` of the products with items at ``locations`` (a select)."""
    z = zone_products
    return select(z.c.location, z.c.sku).where(
        and_(z.c.site_id == site_id, z.c.location.in_(sorted(set(locations))), z.c["items"] > 0)
    )


__all__ = ["before_items_upsert", "before_stock_upsert", "products_in", "recount", "stored", "zone_products"]
