"""Per-lot cold-chain evidence: MKT, remaining shelf life and expiry from a lot's history.

Shelf life: the product's model (:func:`cloud.lots.history.product_model`) applied from the lot's
*start* to ``now``. The start is the production date implied by the label (printed expiry - nominal
days) when both are known, otherwise the first arrival on a site; unobserved time (before arrival,
gaps, places without sensors) is charged at the reference temperature, i.e. "kept as labelled". A
lot kept as labelled therefore has a dynamic expiry equal to its printed one, and any warm time
pulls it earlier. The effective expiry is the earlier of the two.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain import lot_history as lh
from cloud.coldchain.fefo import LotExpiry
from cloud.coldchain.mkt import DEFAULT_ACTIVATION_ENERGY_KJ
from cloud.coldchain.shelflife import ShelfLifeEstimate, remaining_shelf_life
from cloud.core import db
from cloud.lots.history import LotHistory, LotKey, load_history, resolve_lot


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


__all__ = ["LotEvidence", "evaluate", "lot_evidence", "summary"]
