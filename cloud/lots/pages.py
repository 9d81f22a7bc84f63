"""``/lots`` and ``/fefo`` served from the lot-evidence read model (:mod:`cloud.lots.readmodel`).

The cost of a page is the page's rows plus the lots of the page's products (for FEFO ranks), read
through indexes; it does not grow with the site's items, readings or movements. Rows are shifted
to the request's time as explained in :mod:`cloud.lots.readmodel`; the result equals
:func:`cloud.lots.service.list_lots` / :func:`cloud.lots.service.fefo` once the catch-up job has
folded in what changed (tests/cloud/test_lot_readmodel.py checks it on random histories).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain.evidence_tables import lot_evidence, lot_evidence_stock
from cloud.coldchain.shelflife import DAY_S
from cloud.core import db
from cloud.lots.service import FEFO_FIELDS

LotKey = tuple[str, str]


def _codepoint(conn: AsyncConnection, column: Any) -> Any:
    """Order as Python compares strings (the oracle sorts in Python): PostgreSQL's "C" collation."""
    return column.collate("C") if conn.dialect.name == "postgresql" else column


def _base(site: str | None) -> Select[Any]:
    """Every lot row with ``quantity``: on hand in all sites, or at ``site`` only (lots there)."""
    e, st = lot_evidence, lot_evidence_stock
    if site is None:
        return select(e, e.c.on_hand.label("quantity"))
    at_site = (
        select(st.c.sku, st.c.lot_code, func.sum(st.c.quantity).label("quantity"))
        .where(st.c.site_id == site)
        .group_by(st.c.sku, st.c.lot_code)
        .subquery()
    )
    return select(e, at_site.c.quantity).join(
        at_site, tuple_(at_site.c.sku, at_site.c.lot_code) == tuple_(e.c.sku, e.c.lot_code)
    )


def _quantity(query: Select[Any]) -> ColumnElement[Any]:
    return query.selected_columns.quantity


async def _locations(
    conn: AsyncConnection, keys: Sequence[LotKey], site: str | None
) -> dict[LotKey, list[dict[str, Any]]]:
    st = lot_evidence_stock
    found: dict[LotKey, dict[tuple[str, str | None], int]] = defaultdict(dict)
    if keys:
        query = select(st).where(tuple_(st.c.sku, st.c.lot_code).in_(list(keys)))
        if site is not None:
            query = query.where(st.c.site_id == site)
        for r in await conn.execute(query):
            found[(r.sku, r.lot_code)][(r.site_id, r.location or None)] = r.quantity
    return {
        key: [
            {"site_id": s, "location": loc, "quantity": n}
            for (s, loc), n in sorted(found.get(key, {}).items(), key=str)
        ]
        for key in keys
    }


async def _ranks(conn: AsyncConnection, skus: set[str], site: str | None) -> dict[LotKey, int]:
    """FEFO rank of every on-hand lot of ``skus`` (1 = pick first), as :func:`fefo_order` ranks."""
    if not skus:
        return {}
    base = _base(site)
    query = base.where(lot_evidence.c.sku.in_(sorted(skus)), _quantity(base) > 0)
    by_sku: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    for r in await conn.execute(query):
        by_sku[r.sku].append((db.utc(r.fefo_key), r.lot_id, r.lot_code))
    ranks: dict[LotKey, int] = {}
    for sku, lots in by_sku.items():
        for rank, (_, _, code) in enumerate(sorted(lots), start=1):
            ranks[(sku, code)] = rank
    return ranks


def _shifted(row: Any, now: datetime) -> dict[str, Any]:
    """Shelf-life figures at ``now`` from the row's ``as_of`` ones (see the read model's docstring)."""
    if not row.has_model:
        return {"remaining": None, "consumed": None, "dynamic": None, "effective": _utc(row.effective_expiry)}
    if row.floating:  # never seen, no label: "kept as labelled from now on"
        dynamic = now + timedelta(days=row.remaining_days)
        return {
            "remaining": row.remaining_days,
            "consumed": row.consumed_days,
            "dynamic": dynamic,
            "effective": dynamic,
        }
    elapsed = (now - db.utc(row.as_of)).total_seconds() / DAY_S
    return {
        "remaining": row.remaining_days - elapsed,
        "consumed": row.consumed_days + elapsed,
        "dynamic": _utc(row.dynamic_expiry),
        "effective": _utc(row.effective_expiry),
    }


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else db.utc(value)


def summary(row: Any, now: datetime, locations: list[dict[str, Any]], rank: int | None) -> dict[str, Any]:
    """The same dict as :func:`cloud.lots.evidence.summary`."""
    life = _shifted(row, now)
    effective = life["effective"]
    return {
        "lot_id": row.lot_id,
        "sku": row.sku,
        "lot_code": row.lot_code,
        "expiry": row.printed_expiry,
        "items": row.items,
        "on_hand": int(row.quantity),
        "locations": locations,
        "mkt_c": row.mkt_c,
        "observed_hours": row.observed_s / 3600,
        "time_above_max_s": row.above_s,
        "time_below_min_s": row.below_s,
        "remaining_shelf_life_days": life["remaining"],
        "consumed_shelf_life_days": life["consumed"],
        "dynamic_expiry": life["dynamic"],
        "effective_expiry": effective,
        "expiry_source": "dynamic" if row.floating else row.expiry_source,
        "expired": effective is not None and effective <= now,
        "fefo_rank": rank,
    }


async def _summaries(
    conn: AsyncConnection, rows: Sequence[Any], site: str | None, now: datetime
) -> list[dict[str, Any]]:
    keys = [(r.sku, r.lot_code) for r in rows]
    locations = await _locations(conn, keys, site)
    ranks = await _ranks(conn, {r.sku for r in rows}, site)
    return [summary(r, now, locations[(r.sku, r.lot_code)], ranks.get((r.sku, r.lot_code))) for r in rows]


async def list_lots(
    conn: AsyncConnection,
    *,
    product: str | None = None,
    site: str | None = None,
    expiring_within_days: float | None = None,
    expires_before: date | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """A page of lot summaries and the number of matching lots (filters as the oracle's)."""
    now = db.utc(now) if now is not None else db.utcnow()
    e = lot_evidence
    query = _base(site)
    if product is not None:
        query = query.where(e.c.sku == product)
    if expires_before is not None:
        query = query.where(e.c.printed_expiry < expires_before)
    if expiring_within_days is not None:
        horizon = now + timedelta(days=expiring_within_days)
        query = query.where(_quantity(query) > 0, e.c.effective_expiry <= horizon)
        query = query.order_by(e.c.effective_expiry, _codepoint(conn, e.c.lot_id))
    else:
        query = query.order_by(e.c.sku, e.c.lot_code)
    total = await conn.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page = query.offset(offset) if offset else query
    if limit is not None:
        page = page.limit(limit)
    rows = (await conn.execute(page)).all()
    return await _summaries(conn, rows, site, now), int(total or 0)


async def fefo(
    conn: AsyncConnection,
    *,
    product: str | None = None,
    site: str | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Pick order per product (a page of ``limit`` products after the SKU ``after``) and the
    cursor of the next page (None: last page)."""
    now = db.utc(now) if now is not None else db.utcnow()
    e = lot_evidence
    base = _base(site)
    on_hand = base.where(_quantity(base) > 0)
    sku = _codepoint(conn, e.c.sku)
    products = on_hand.with_only_columns(e.c.sku, maintain_column_froms=True).group_by(e.c.sku).order_by(sku)
    if product is not None:
        products = products.where(e.c.sku == product)
    if after is not None:
        products = products.where(sku > after)
    if limit is not None:
        products = products.limit(limit + 1)
    skus = list(await conn.scalars(products))
    following = None
    if limit is not None and len(skus) > limit:
        skus, following = skus[:limit], skus[limit - 1]
    rows = (await conn.execute(on_hand.where(e.c.sku.in_(skus)))).all() if skus else []
    summaries = await _summaries(conn, rows, site, now)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in summaries:
        grouped[row["sku"]].append({k: row[k] for k in FEFO_FIELDS})
    result = [{"product": s, "lots": sorted(grouped[s], key=lambda r: r["fefo_rank"])} for s in skus]
    return result, following


__all__ = ["fefo", "list_lots", "summary"]
