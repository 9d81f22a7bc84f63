"""A lot's identity and history: its id, its product's shelf-life model, where its items were and
the readings of those zones (loaded from the stock ledger and the sensor tables).

A lot is ``(sku, lot_code)``; its public id is ``"SKU:LOT_CODE"`` (a bare lot code is accepted
when only one product has it). Its history comes from the stock movements of its registered
items (EPC -> item -> lot) joined with the temperature readings of the zones (``zone`` =
location id) over the time the items were there; see :mod:`cloud.coldchain.lot_history` for the
rules (sample-and-hold, data gaps, several sensors, the worst path of a split lot).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.alerts.rules import IGNORED_FLAGS
from cloud.coldchain import lot_history as lh
from cloud.coldchain import sensor_tables as sensors_db
from cloud.coldchain.mkt import DEFAULT_ACTIVATION_ENERGY_KJ
from cloud.coldchain.shelflife import ShelfLifeModel
from cloud.core import db
from cloud.core.errors import CloudError
from cloud.masterdata import tables as masterdata_db
from cloud.retention.reads import rolled_zone_readings
from cloud.stock import tables as stock_db

DEFAULT_REFERENCE_C = 5.0


CHUNK = 5000


class LotNotFound(CloudError):
    """No lot with that id."""

    status_code = 404
    code = "not_found"


class LotAmbiguous(CloudError):
    """A bare lot code that several products use; the caller must say ``SKU:LOT_CODE``."""

    status_code = 409
    code = "ambiguous_lot"


LotKey = tuple[str, str]


def lot_id(sku: str, lot_code: str) -> str:
    return f"{sku}:{lot_code}"


async def resolve_lot(conn: AsyncConnection, text: str) -> LotKey:
    """``SKU:LOT_CODE`` (SKU and code may contain ':' themselves) or a bare, unambiguous lot code."""
    t = masterdata_db.lots
    candidates = [(text[:i], text[i + 1 :]) for i, c in enumerate(text) if c == ":"]
    for sku, code in candidates:
        found = await conn.scalar(select(t.c.sku).where(t.c.sku == sku, t.c.lot_code == code))
        if found is not None:
            return sku, code
    skus = list(await conn.scalars(select(t.c.sku).where(t.c.lot_code == text).order_by(t.c.sku)))
    if len(skus) > 1:
        raise LotAmbiguous(f"lot code {text!r} exists for {', '.join(skus)}; use SKU:{text}")
    if not skus:
        raise LotNotFound(f"no lot {text!r} (use SKU:LOT_CODE)")
    return skus[0], text


@dataclass(frozen=True, slots=True)
class ProductInfo:
    sku: str
    name: str
    min_c: float | None
    max_c: float | None
    model: ShelfLifeModel | None  # None: no shelf_life_days, no dynamic expiry


def reference_temperature(row: Mapping[str, Any]) -> float:
    """The product's own, else the middle of its storage range, else 5 °C."""
    if row.get("reference_temp_c") is not None:
        return float(row["reference_temp_c"])
    low, high = row.get("storage_temp_min_c"), row.get("storage_temp_max_c")
    if low is not None and high is not None:
        return (float(low) + float(high)) / 2
    return DEFAULT_REFERENCE_C


def product_model(row: Mapping[str, Any]) -> ShelfLifeModel | None:
    """The product's shelf-life model; defaults: Arrhenius, 83.144 kJ/mol, Q10 2."""
    days = row.get("shelf_life_days")
    if not days:
        return None
    kind = row.get("shelf_life_model") or "arrhenius"
    return ShelfLifeModel(
        nominal_days=float(days),
        reference_temp_c=reference_temperature(row),
        kind="q10" if kind == "q10" else "arrhenius",
        activation_energy_kj=float(row.get("activation_energy_kj") or DEFAULT_ACTIVATION_ENERGY_KJ),
        q10=float(row.get("q10") or 2.0),
    )


def product_info(row: Mapping[str, Any]) -> ProductInfo:
    return ProductInfo(
        sku=row["sku"],
        name=row.get("name") or "",
        min_c=row.get("storage_temp_min_c"),
        max_c=row.get("storage_temp_max_c"),
        model=product_model(row),
    )


@dataclass(slots=True)
class LotHistory:
    """Everything loaded for one lot."""

    sku: str
    lot_code: str
    printed_expiry: date | None
    product: ProductInfo
    epcs: list[str]
    paths: dict[tuple[lh.Stay, ...], list[str]]
    pieces: dict[tuple[lh.Stay, ...], list[lh.Piece]]  # per path, whole history
    readings: list[dict[str, Any]]  # the zone readings used, for reports
    on_hand: dict[tuple[str, str | None], int]  # (site, location) -> items present
    now: datetime

    @property
    def id(self) -> str:
        return lot_id(self.sku, self.lot_code)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


async def _moves(conn: AsyncConnection, epcs: Sequence[str], now: datetime) -> list[lh.Move]:
    m = stock_db.stock_movements
    moves: list[lh.Move] = []
    for chunk in _chunks(epcs):
        rows = await conn.execute(
            select(m.c.epc, m.c.site_id, m.c.to_location, m.c.at)
            .where(m.c.epc.in_(chunk), m.c.at <= now)
            .order_by(m.c.at, m.c.id)
        )
        moves += [lh.Move(r.epc, r.site_id, r.to_location, r.at) for r in rows]
    return moves


async def _on_hand(
    conn: AsyncConnection, epcs: Sequence[str], site: str | None = None
) -> dict[tuple[str, str | None], int]:
    s = stock_db.stock_items
    counts: Counter[tuple[str, str | None]] = Counter()
    for chunk in _chunks(epcs):
        query = select(s.c.site_id, s.c.location, func.count()).where(
            s.c.epc.in_(chunk), s.c.present.is_(True)
        )
        if site is not None:
            query = query.where(s.c.site_id == site)
        for site_id, location, n in await conn.execute(query.group_by(s.c.site_id, s.c.location)):
            counts[(site_id, location)] += int(n)
    return dict(counts)


async def zone_readings(
    conn: AsyncConnection,
    site_id: str | None,
    zone: str,
    since: datetime,
    until: datetime,
    max_gap_s: float = lh.DEFAULT_MAX_GAP_S,
) -> list[dict[str, Any]]:
    """Temperature readings of a zone in ``[since, until]`` (edge-flagged implausible ones left out);
    before the retention horizon, the roll-up's buckets as synthetic readings (cloud.retention.reads)."""
    horizon, rolled = await rolled_zone_readings(conn, site_id, zone, since, until, max_gap_s / 2)
    r = sensors_db.sensor_readings
    query = (
        select(r.c.site_id, r.c.zone, r.c.sensor_id, r.c.time, r.c.value, r.c.flags)
        .where(r.c.zone == zone, r.c.quantity == "temperature", r.c.time >= since, r.c.time <= until)
        .order_by(r.c.time, r.c.id)
    )
    if horizon is not None:  # on PostgreSQL rolled-up rows live on until their partition is dropped
        query = query.where(r.c.time >= horizon)
    if site_id is not None:
        query = query.where(r.c.site_id == site_id)
    rows = (await conn.execute(query)).mappings().all()
    raw = [dict(row) for row in rows if not IGNORED_FLAGS.intersection((row["flags"] or "").split(","))]
    return rolled + raw


def _as_reading(row: Mapping[str, Any]) -> lh.Reading:
    return lh.Reading(row["sensor_id"], lh.epoch(row["time"]), float(row["value"]))


async def load_history(
    conn: AsyncConnection, key: LotKey, now: datetime | None = None, max_gap_s: float = lh.DEFAULT_MAX_GAP_S
) -> LotHistory:
    """Load a lot's items, movements, stays and the readings of the zones it stayed in."""
    now = db.utc(now) if now is not None else db.utcnow()
    sku, code = key
    lot = (
        await conn.execute(
            select(masterdata_db.lots.c.expiry).where(
                masterdata_db.lots.c.sku == sku, masterdata_db.lots.c.lot_code == code
            )
        )
    ).one_or_none()
    if lot is None:
        raise LotNotFound(f"no lot {lot_id(sku, code)!r}")
    product = (
        (await conn.execute(select(masterdata_db.products).where(masterdata_db.products.c.sku == sku)))
        .mappings()
        .one()
    )
    i = masterdata_db.items
    epcs = sorted(await conn.scalars(select(i.c.epc).where(i.c.sku == sku, i.c.lot_code == code)))
    paths = lh.paths_of(lh.stays_of(await _moves(conn, epcs, now), now))
    # One query per (site, location) over the union of its stays, then cut per stay.
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    for stays in paths:
        for stay in stays:
            k = (stay.site_id, stay.location)
            lo, hi = spans.get(k, (stay.start, stay.end))
            spans[k] = (min(lo, stay.start), max(hi, stay.end))
    by_zone: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (site_id, location), (lo, hi) in spans.items():
        since, until = lh.from_epoch(lo - max_gap_s), lh.from_epoch(hi)
        by_zone[(site_id, location)] = await zone_readings(conn, site_id, location, since, until, max_gap_s)
    pieces: dict[tuple[lh.Stay, ...], list[lh.Piece]] = {}
    used: dict[tuple[Any, ...], dict[str, Any]] = {}
    for stays in paths:
        path_pieces: list[lh.Piece] = []
        for stay in stays:
            rows = by_zone[(stay.site_id, stay.location)]
            path_pieces += lh.zone_pieces(
                map(_as_reading, rows),
                stay.start,
                stay.end,
                site_id=stay.site_id,
                location=stay.location,
                max_gap_s=max_gap_s,
            )
            for row in rows:
                if stay.start <= lh.epoch(row["time"]) < stay.end or (
                    stay.open and lh.epoch(row["time"]) == stay.end
                ):
                    used[(row["site_id"], row["zone"], row["sensor_id"], row["time"])] = row
        pieces[stays] = path_pieces
    readings = sorted(used.values(), key=lambda r: (r["time"], r["site_id"], r["zone"], r["sensor_id"]))
    return LotHistory(
        sku=sku,
        lot_code=code,
        printed_expiry=lot.expiry,
        product=product_info(dict(product)),
        epcs=epcs,
        paths=paths,
        pieces=pieces,
        readings=readings,
        on_hand=await _on_hand(conn, epcs),
        now=now,
    )


__all__ = [
    "LotAmbiguous",
    "LotHistory",
    "LotNotFound",
    "load_history",
    "lot_id",
    "product_model",
    "resolve_lot",
]
