"""Many lots at once: the lot list, FEFO order and a zone's MKT (computed from the evidence of
:mod:`cloud.lots.evidence`; the read model of :mod:`cloud.lots.readmodel` serves the pages).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain import lot_history as lh
from cloud.coldchain.fefo import fefo_order
from cloud.coldchain.mkt import DEFAULT_ACTIVATION_ENERGY_KJ
from cloud.core import db
from cloud.core.errors import CloudError
from cloud.lots.evidence import LotEvidence, evaluate, summary
from cloud.lots.history import LotKey, _as_reading, load_history, zone_readings
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db


async def lot_keys(
    conn: AsyncConnection, *, product: str | None = None, site: str | None = None
) -> list[LotKey]:
    """Lots of a product; with ``site``: only lots with items on hand there."""
    t = masterdata_db.lots
    query = select(t.c.sku, t.c.lot_code).order_by(t.c.sku, t.c.lot_code)
    if product is not None:
        query = query.where(t.c.sku == product)
    if site is not None:
        i, s = masterdata_db.items, stock_db.stock_items
        present = (
            select(i.c.sku, i.c.lot_code)
            .join(s, s.c.epc == i.c.epc)
            .where(s.c.site_id == site, s.c.present.is_(True), i.c.lot_code.is_not(None))
            .distinct()
            .subquery()
        )
        query = query.join(present, and_(present.c.sku == t.c.sku, present.c.lot_code == t.c.lot_code))
    return [(r.sku, r.lot_code) for r in await conn.execute(query)]


async def all_evidence(
    conn: AsyncConnection, *, product: str | None = None, site: str | None = None, now: datetime | None = None
) -> list[LotEvidence]:
    now = db.utc(now) if now is not None else db.utcnow()
    result = []
    for key in await lot_keys(conn, product=product, site=site):
        evidence = evaluate(await load_history(conn, key, now))
        if site is not None:  # quantities and locations at that site only
            evidence.history.on_hand = {k: n for k, n in evidence.history.on_hand.items() if k[0] == site}
        result.append(evidence)
    return result


def fefo_ranks(evidence: Sequence[LotEvidence]) -> dict[str, int]:
    """1-based pick rank per lot id within its product (lots on hand only)."""
    ranks: dict[str, int] = {}
    for ordered in fefo_order(e.as_lot_expiry() for e in evidence).values():
        for rank, lot in enumerate(ordered, start=1):
            ranks[lot.lot_id] = rank
    return ranks


async def list_lots(
    conn: AsyncConnection,
    *,
    product: str | None = None,
    site: str | None = None,
    expiring_within_days: float | None = None,
    expires_before: date | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Lot summaries; ``expiring_within_days``: on hand with effective expiry before now + N days
    (already expired lots included, flagged ``expired``)."""
    now = db.utc(now) if now is not None else db.utcnow()
    evidence = await all_evidence(conn, product=product, site=site, now=now)
    ranks = fefo_ranks(evidence)
    rows = []
    for e in evidence:
        if expires_before is not None and not (
            e.history.printed_expiry and e.history.printed_expiry < expires_before
        ):
            continue
        if expiring_within_days is not None:
            effective = e.effective_expiry
            if e.quantity <= 0 or effective is None or effective > now + timedelta(days=expiring_within_days):
                continue
        rows.append(summary(e, ranks.get(e.history.id)))
    if expiring_within_days is not None:
        rows.sort(key=lambda r: (r["effective_expiry"], r["lot_id"]))
    return rows


async def fefo(
    conn: AsyncConnection, *, product: str | None = None, site: str | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Pick order per product by effective expiry: lots with items on hand, where and how many."""
    evidence = await all_evidence(conn, product=product, site=site, now=now)
    by_id = {e.history.id: e for e in evidence}
    result = []
    for sku, ordered in fefo_order(e.as_lot_expiry() for e in evidence).items():
        lots = []
        for rank, lot in enumerate(ordered, start=1):
            row = summary(by_id[lot.lot_id], rank)
            lots.append({k: row[k] for k in FEFO_FIELDS})
        result.append({"product": sku, "lots": lots})
    return result


FEFO_FIELDS = (
    "fefo_rank",
    "lot_id",
    "lot_code",
    "expiry",
    "dynamic_expiry",
    "effective_expiry",
    "expiry_source",
    "expired",
    "on_hand",
    "locations",
)


class ZoneAmbiguous(CloudError):
    """The zone id exists on several sites; the caller must name the site."""

    status_code = 409
    code = "ambiguous_zone"


async def zone_mkt(
    conn: AsyncConnection,
    zone: str,
    *,
    since: datetime,
    until: datetime,
    site: str | None = None,
    activation_energy_kj: float = DEFAULT_ACTIVATION_ENERGY_KJ,
    max_gap_s: float = lh.DEFAULT_MAX_GAP_S,
) -> dict[str, Any]:
    since, until = db.utc(since), db.utc(until)
    rows = await zone_readings(conn, site, zone, since - timedelta(seconds=max_gap_s), until)
    sites = sorted({r["site_id"] for r in rows})
    if len(sites) > 1:
        raise ZoneAmbiguous(f"zone {zone!r} has readings on sites {', '.join(sites)}; pass site=")
    pieces = lh.zone_pieces(map(_as_reading, rows), lh.epoch(since), lh.epoch(until), max_gap_s=max_gap_s)
    inside = sum(1 for r in rows if since <= r["time"] <= until)
    return {
        "zone": zone,
        "site_id": sites[0] if sites else site,
        "since": since,
        "until": until,
        "activation_energy_kj": activation_energy_kj,
        "mkt_c": lh.mkt_of(pieces, activation_energy_kj),
        "readings": inside,
        "observed_hours": lh.observed_seconds(pieces) / 3600,
        "min_c": min((p.lo for p in pieces), default=None),
        "max_c": max((p.hi for p in pieces), default=None),
    }


__all__ = ["FEFO_FIELDS", "ZoneAmbiguous", "all_evidence", "fefo", "list_lots", "zone_mkt"]
