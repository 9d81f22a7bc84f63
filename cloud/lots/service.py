"""Per-lot cold-chain evidence: history, MKT, remaining shelf life, FEFO and expiry alerts.

A lot is ``(sku, lot_code)``; its public id is ``"SKU:LOT_CODE"`` (a bare lot code is accepted
when only one product has it). Its history comes from the stock movements of its registered
items (EPC -> item -> lot) joined with the temperature readings of the zones (``zone`` =
location id) over the time the items were there; see :mod:`cloud.coldchain.lot_history` for the
rules (sample-and-hold, data gaps, several sensors, the worst path of a split lot).

Shelf life: the product's model (:func:`product_model`) applied from the lot's *start* to ``now``.
The start is the production date implied by the label (printed expiry - nominal days) when both
are known, otherwise the first arrival on a site; unobserved time (before arrival, gaps, places
without sensors) is charged at the reference temperature, i.e. "kept as labelled". A lot kept as
labelled therefore has a dynamic expiry equal to its printed one, and any warm time pulls it
earlier. The effective expiry is the earlier of the two.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.alerts import tables as alerts_db
from cloud.alerts.rules import IGNORED_FLAGS
from cloud.coldchain import evidence_tables as read_model
from cloud.coldchain import lot_history as lh
from cloud.coldchain import sensor_tables as sensors_db
from cloud.coldchain.fefo import LotExpiry, fefo_order
from cloud.coldchain.mkt import DEFAULT_ACTIVATION_ENERGY_KJ
from cloud.coldchain.service import Notice
from cloud.coldchain.shelflife import ShelfLifeEstimate, ShelfLifeModel, remaining_shelf_life
from cloud.core import db, jobs
from cloud.core.errors import CloudError
from cloud.ingest.projections import dialect_insert
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db

log = logging.getLogger(__name__)

DEFAULT_REFERENCE_C = 5.0
CHUNK = 5000
ACTIVE = ("open", "acknowledged")
EXPIRY_KINDS = ("expiry_soon", "expired_on_hand")
SYSTEM = "system"
JOB_NAME = "lot_expiry"


class LotNotFound(CloudError):
    """No lot with that id."""


class LotAmbiguous(CloudError):
    """A bare lot code that several products use; the caller must say ``SKU:LOT_CODE``."""


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


# --- products -----------------------------------------------------------------------------------


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


# --- loading ------------------------------------------------------------------------------------


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
    conn: AsyncConnection, site_id: str | None, zone: str, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Temperature readings of a zone in ``[since, until]`` (edge-flagged implausible ones left out)."""
    r = sensors_db.sensor_readings
    query = (
        select(r.c.site_id, r.c.zone, r.c.sensor_id, r.c.time, r.c.value, r.c.flags)
        .where(r.c.zone == zone, r.c.quantity == "temperature", r.c.time >= since, r.c.time <= until)
        .order_by(r.c.time, r.c.id)
    )
    if site_id is not None:
        query = query.where(r.c.site_id == site_id)
    rows = (await conn.execute(query)).mappings().all()
    return [dict(row) for row in rows if not IGNORED_FLAGS.intersection((row["flags"] or "").split(","))]


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
        by_zone[(site_id, location)] = await zone_readings(conn, site_id, location, since, until)
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


# --- evaluation -----------------------------------------------------------------------------------


def printed_datetime(expiry: date | None) -> datetime | None:
    """A printed date means the start of that day in UTC (as in :mod:`cloud.coldchain.fefo`)."""
    return None if expiry is None else datetime.combine(expiry, time.min, UTC)


@dataclass(frozen=True, slots=True)
class LotEvidence:
    """What a lot went through: the worst of its paths (see the module docstring)."""

    history: LotHistory
    since: datetime | None
    until: datetime | None
    activation_energy_kj: float
    mkt_c: float | None
    observed_s: float
    excursions: lh.Excursions
    shelf_life: ShelfLifeEstimate | None
    first_arrival: datetime | None
    stays: list[dict[str, Any]] = field(default_factory=list)

    @property
    def effective_expiry(self) -> datetime | None:
        if self.shelf_life is not None:
            return self.shelf_life.effective_expiry
        return printed_datetime(self.history.printed_expiry)

    @property
    def quantity(self) -> int:
        return sum(self.history.on_hand.values())

    def as_lot_expiry(self, location: str | None = None, quantity: int | None = None) -> LotExpiry:
        return LotExpiry(
            lot_id=self.history.id,
            product_id=self.history.sku,
            printed_expiry=self.history.printed_expiry,
            dynamic_expiry=self.shelf_life.dynamic_expiry if self.shelf_life else None,
            location=location,
            quantity=self.quantity if quantity is None else quantity,
        )


def _shelf_life(
    history: LotHistory, path_pieces: Sequence[lh.Piece], arrival: float
) -> ShelfLifeEstimate | None:
    model = history.product.model
    if model is None:
        return None
    printed = printed_datetime(history.printed_expiry)
    start = lh.from_epoch(arrival)
    if printed is not None:
        start = min(start, printed - timedelta(days=model.nominal_days))
    start = min(start, history.now)
    times, temps = lh.hold_series(path_pieces, model.reference_temp_c)
    return remaining_shelf_life(
        model, times, temps, start=start, now=history.now, printed_expiry=printed, weighting="hold"
    )


def _stays_table(history: LotHistory) -> list[dict[str, Any]]:
    counts: Counter[lh.Stay] = Counter()
    for stays, epcs in history.paths.items():
        for stay in stays:
            counts[stay] += len(epcs)
    return [
        {
            "site_id": s.site_id,
            "location": s.location,
            "start": lh.from_epoch(s.start),
            "end": None if s.open else lh.from_epoch(s.end),
            "items": n,
        }
        for s, n in sorted(counts.items(), key=lambda kv: (kv[0].start, kv[0].site_id, kv[0].location))
    ]


def evaluate(
    history: LotHistory,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    activation_energy_kj: float = DEFAULT_ACTIVATION_ENERGY_KJ,
) -> LotEvidence:
    """MKT and excursions over ``[since, until)``; shelf life always over the whole history."""
    lo = None if since is None else lh.epoch(since)
    hi = None if until is None else lh.epoch(until)
    worst_mkt: float | None = None
    worst_exc = lh.Excursions()
    worst_life: ShelfLifeEstimate | None = None
    observed = 0.0
    arrivals = [stays[0].start for stays in history.paths if stays]
    for stays, path_pieces in history.pieces.items():
        window = lh.clip(path_pieces, lo, hi)
        mkt = lh.mkt_of(window, activation_energy_kj)
        if mkt is not None and (worst_mkt is None or mkt > worst_mkt):
            worst_mkt, observed = mkt, lh.observed_seconds(window)
        exc = lh.excursions(window, history.product.min_c, history.product.max_c)
        if exc.above_s + exc.below_s > worst_exc.above_s + worst_exc.below_s:
            worst_exc = exc
        if stays:
            life = _shelf_life(history, path_pieces, stays[0].start)
            if life is not None and (worst_life is None or life.remaining_days < worst_life.remaining_days):
                worst_life = life
    if worst_life is None and not history.paths:
        worst_life = _shelf_life(history, [], lh.epoch(history.now))  # never seen: label only
    return LotEvidence(
        history=history,
        since=since,
        until=until,
        activation_energy_kj=activation_energy_kj,
        mkt_c=worst_mkt,
        observed_s=observed,
        excursions=worst_exc,
        shelf_life=worst_life,
        first_arrival=lh.from_epoch(min(arrivals)) if arrivals else None,
        stays=_stays_table(history),
    )


async def lot_evidence(
    conn: AsyncConnection,
    lot: str | LotKey,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    activation_energy_kj: float = DEFAULT_ACTIVATION_ENERGY_KJ,
) -> LotEvidence:
    key = await resolve_lot(conn, lot) if isinstance(lot, str) else lot
    history = await load_history(conn, key, now)
    return evaluate(
        history,
        since=None if since is None else db.utc(since),
        until=None if until is None else db.utc(until),
        activation_energy_kj=activation_energy_kj,
    )


def summary(evidence: LotEvidence, fefo_rank: int | None = None) -> dict[str, Any]:
    """The JSON-able summary of one lot (the ``GET /lots`` row and the report's header)."""
    h, life = evidence.history, evidence.shelf_life
    expiry = evidence.as_lot_expiry()
    effective = evidence.effective_expiry
    return {
        "lot_id": h.id,
        "sku": h.sku,
        "lot_code": h.lot_code,
        "expiry": h.printed_expiry,
        "items": len(h.epcs),
        "on_hand": evidence.quantity,
        "locations": [
            {"site_id": site, "location": loc, "quantity": n}
            for (site, loc), n in sorted(h.on_hand.items(), key=str)
        ],
        "mkt_c": evidence.mkt_c,
        "observed_hours": evidence.observed_s / 3600,
        "time_above_max_s": evidence.excursions.above_s,
        "time_below_min_s": evidence.excursions.below_s,
        "remaining_shelf_life_days": None if life is None else life.remaining_days,
        "consumed_shelf_life_days": None if life is None else life.consumed_days,
        "dynamic_expiry": None if life is None else life.dynamic_expiry,
        "effective_expiry": effective,
        "expiry_source": expiry.expiry_source,
        "expired": effective is not None and effective <= h.now,
        "fefo_rank": fefo_rank,
    }


# --- many lots: list, FEFO ------------------------------------------------------------------------


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


# --- zones ----------------------------------------------------------------------------------------


class ZoneAmbiguous(CloudError):
    """The zone id exists on several sites; the caller must name the site."""


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


# --- expiry alerts --------------------------------------------------------------------------------


def alert_rule(kind: str, key: LotKey) -> str:
    """``<kind>:<digest of the lot>`` (fits ``alerts.rule``): one active alert per kind, lot and
    location is then guaranteed by the alerts table's one-active index on (site, zone, rule)."""
    digest = hashlib.sha256(f"{key[0]}\x00{key[1]}".encode()).hexdigest()[: 32 - len(kind) - 1]
    return f"{kind}:{digest}"


@dataclass(frozen=True, slots=True)
class ExpiryCheck:
    opened: list[int]
    resolved: list[int]
    notices: list[Notice] = field(default_factory=list)  # the opened alerts, to tell people


class AlertNotifier(Protocol):
    """The notifier (:class:`cloud.notify.notifier.Notifier`): queues messages after the commit,
    returns at once."""

    def notify(self, notices: Sequence[Notice]) -> None: ...


@dataclass(frozen=True, slots=True)
class ExpiringStock:
    """Items of a lot at one location whose effective expiry is near (from the lot read model)."""

    sku: str
    lot_code: str
    lot_id: str
    effective_expiry: datetime
    site_id: str
    location: str


async def expiring_stock(conn: AsyncConnection, horizon: datetime) -> list[ExpiringStock]:
    """Lots on hand per location with an effective expiry up to ``horizon``: an index range of the
    lot read model (cloud.lots.readmodel), not a replay of every lot's history."""
    e, st = read_model.lot_evidence, read_model.lot_evidence_stock
    query = (
        select(e.c.sku, e.c.lot_code, e.c.lot_id, e.c.effective_expiry, st.c.site_id, st.c.location)
        .join(st, and_(st.c.sku == e.c.sku, st.c.lot_code == e.c.lot_code))
        .where(
            e.c.fefo_key <= horizon, e.c.effective_expiry.is_not(None), st.c.quantity > 0, st.c.location != ""
        )
    )
    return [
        ExpiringStock(r.sku, r.lot_code, r.lot_id, db.utc(r.effective_expiry), r.site_id, r.location)
        for r in await conn.execute(query)
    ]


def _wanted(
    stock: Iterable[ExpiringStock], now: datetime, within: timedelta
) -> dict[tuple[str, str, str], tuple[str, ExpiringStock]]:
    """``(site, location, rule) -> (kind, lot)`` for every lot+location that needs an alert now."""
    wanted: dict[tuple[str, str, str], tuple[str, ExpiringStock]] = {}
    for lot in stock:
        effective = lot.effective_expiry
        if effective > now + within:
            continue
        kind = "expired_on_hand" if effective <= now else "expiry_soon"
        wanted[(lot.site_id, lot.location, alert_rule(kind, (lot.sku, lot.lot_code)))] = (kind, lot)
    return wanted


def _alert_row(
    site: str, location: str, rule: str, kind: str, lot: ExpiringStock, now: datetime
) -> dict[str, Any]:
    effective = lot.effective_expiry
    days_left = (effective - now).total_seconds() / 86400
    return {
        "site_id": site,
        "zone": location,
        "rule": rule,
        "status": "open",
        "source": "cloud",
        "sensor_id": None,
        "limit": None,
        "peak_value": days_left,  # days to the effective expiry (negative: expired)
        "last_value": days_left,
        "first_breach_at": min(effective, now),
        "last_breach_at": now,
        "kind": kind,
        "severity": "critical" if kind == "expired_on_hand" else "warning",
        "limit_source": f"lot {lot.lot_id} expiry {effective.isoformat()}"[:160],
    }


async def check_expiry(
    engine: AsyncEngine, *, within_days: float = 3.0, now: datetime | None = None
) -> ExpiryCheck:
    """Open ``expiry_soon`` / ``expired_on_hand`` alerts, one per lot+location, and resolve this
    check's own alerts whose condition is gone (the lot left the location, or a soon-alert became
    an expired one). Other alert kinds are never touched. Reads the lot read model: what the
    catch-up job has folded in (within seconds for movements, minutes for readings)."""
    now = db.utc(now) if now is not None else db.utcnow()
    within = timedelta(days=within_days)
    async with engine.connect() as conn:
        stock = await expiring_stock(conn, now + within)
    wanted = _wanted(stock, now, within)
    a = alerts_db.alerts
    opened: list[int] = []
    resolved: list[int] = []
    notices: list[Notice] = []
    async with db.write_transaction(engine) as conn:
        active = await conn.execute(
            select(a.c.id, a.c.site_id, a.c.zone, a.c.rule).where(
                a.c.kind.in_(EXPIRY_KINDS), a.c.status.in_(ACTIVE)
            )
        )
        existing = {(r.site_id, r.zone, r.rule): r.id for r in active}
        for (site, location, rule), (kind, e) in sorted(wanted.items(), key=lambda kv: kv[0]):
            if (site, location, rule) in existing:
                continue
            row = _alert_row(site, location, rule, kind, e, now)
            row["notified_at"] = now  # as cold-chain alerts: told now, escalated from here
            stmt = dialect_insert(conn, a).values(**row).on_conflict_do_nothing().returning(a.c.id)
            new_id = await conn.scalar(stmt)  # None: a concurrent check opened it first
            if new_id is not None:
                opened.append(int(new_id))
                notices.append(Notice({**row, "id": int(new_id), "escalation_level": 0}, "raised"))
        stale = [alert_id for k, alert_id in existing.items() if k not in wanted]
        if stale:
            await conn.execute(
                update(a)
                .where(a.c.id.in_(stale), a.c.status.in_(ACTIVE))
                .values(
                    status="resolved",
                    resolved_at=now,
                    resolved_by=SYSTEM,
                    resolve_reason="lot no longer on hand there, or its alert kind changed",
                )
            )
            resolved = sorted(stale)
    return ExpiryCheck(opened, resolved, notices)


# --- the periodic job -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiryOptions:
    enabled: bool = True
    interval_s: float = 900.0
    within_days: float = 3.0


async def _claim(engine: AsyncEngine, options: ExpiryOptions, now: datetime) -> bool:
    """Claim the due tick across replicas; the first tick is one interval after start-up."""
    await jobs.ensure_job(engine, JOB_NAME, options.interval_s)
    return await jobs.claim_job(engine, JOB_NAME, options.interval_s, now)


async def expiry_job_loop(
    engine: AsyncEngine, options: ExpiryOptions, notifier: AlertNotifier | None = None
) -> None:
    """Run :func:`check_expiry` whenever this replica claims a due tick, then hand the opened alerts
    to ``notifier`` (after the commit); log state changes only."""

    async def step() -> None:
        if await _claim(engine, options, db.utcnow()):
            result = await check_expiry(engine, within_days=options.within_days)
            if notifier is not None and result.notices:
                notifier.notify(result.notices)
            if result.opened or result.resolved:
                log.info("expiry check: opened %s, resolved %s", result.opened, result.resolved)

    await jobs.run_periodic("expiry", step, min(max(options.interval_s / 4, 0.05), 30.0), log)


def expiry_job(
    engine: AsyncEngine, options: ExpiryOptions | None = None, notifier: AlertNotifier | None = None
) -> contextlib.AbstractAsyncContextManager[None]:
    """Run :func:`expiry_job_loop` for the lifetime of the context (the app's lifespan)."""
    options = options or ExpiryOptions()
    job = (lambda: expiry_job_loop(engine, options, notifier)) if options.enabled else None
    return jobs.background("lot-expiry-job", job)


__all__ = [
    "FEFO_FIELDS",
    "AlertNotifier",
    "ExpiryCheck",
    "ExpiryOptions",
    "LotAmbiguous",
    "LotEvidence",
    "LotHistory",
    "LotNotFound",
    "ZoneAmbiguous",
    "alert_rule",
    "all_evidence",
    "check_expiry",
    "evaluate",
    "expiry_job",
    "fefo",
    "list_lots",
    "load_history",
    "lot_evidence",
    "lot_id",
    "product_model",
    "resolve_lot",
    "summary",
    "zone_mkt",
]
