"""First-expired-first-out pick order and expiry alerts over lots.

A lot's effective expiry is the earlier of its printed expiry and its dynamic expiry from the
temperature history (:mod:`cloud.coldchain.shelflife`): a lot that spent a day warm goes first
even if its label says otherwise. Lots with neither date go last (they cannot be ranked), in a
stable order by lot id, so the pick list never changes between two identical calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


def _as_datetime(moment: datetime | date | None) -> datetime | None:
    """Dates mean the start of that day in UTC (a product labelled 'use by 3 May' is gone on 3 May)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.combine(moment, time.min, UTC)


@dataclass(frozen=True, slots=True)
class LotExpiry:
    lot_id: str
    product_id: str
    printed_expiry: datetime | date | None = None
    dynamic_expiry: datetime | None = None
    location: str | None = None
    quantity: int = 1

    @property
    def effective_expiry(self) -> datetime | None:
        dates = [d for d in (_as_datetime(self.printed_expiry), _as_datetime(self.dynamic_expiry)) if d]
        return min(dates) if dates else None

    @property
    def expiry_source(self) -> str | None:
        """Which date decides: ``printed`` or ``dynamic`` (the label wins a tie)."""
        printed, dynamic = _as_datetime(self.printed_expiry), _as_datetime(self.dynamic_expiry)
        if printed is None and dynamic is None:
            return None
        if dynamic is None or (printed is not None and printed <= dynamic):
            return "printed"
        return "dynamic"


_NEVER = datetime.max.replace(tzinfo=UTC)


def _key(lot: LotExpiry) -> tuple[datetime, str]:
    return (lot.effective_expiry or _NEVER, lot.lot_id)


def fefo_order(lots: Iterable[LotExpiry]) -> dict[str, list[LotExpiry]]:
    """Pick order per product: earliest effective expiry first; lots on hand only (quantity > 0)."""
    by_product: dict[str, list[LotExpiry]] = defaultdict(list)
    for lot in lots:
        if lot.quantity > 0:
            by_product[lot.product_id].append(lot)
    return {product: sorted(group, key=_key) for product, group in sorted(by_product.items())}


def expiring_within(lots: Iterable[LotExpiry], now: datetime, days: float) -> list[LotExpiry]:
    """Lots on hand not yet expired at ``now`` that expire within ``days``, soonest first."""
    now = _as_datetime(now) or now
    horizon = now + timedelta(days=days)
    return sorted(
        (lot for lot in lots if lot.quantity > 0 and (e := lot.effective_expiry) and now < e <= horizon),
        key=_key,
    )


def expired(lots: Iterable[LotExpiry], now: datetime) -> list[LotExpiry]:
    """Lots still on hand whose effective expiry is at or before ``now``, longest expired first."""
    now = _as_datetime(now) or now
    return sorted(
        (lot for lot in lots if lot.quantity > 0 and (e := lot.effective_expiry) and e <= now),
        key=_key,
    )


def expiring_by_location(
    lots: Iterable[LotExpiry], now: datetime, days: float
) -> dict[str | None, list[LotExpiry]]:
    """:func:`expiring_within` grouped by location, for per-location expiry alerts."""
    grouped: dict[str | None, list[LotExpiry]] = defaultdict(list)
    for lot in expiring_within(lots, now, days):
        grouped[lot.location].append(lot)
    return dict(grouped)


__all__ = ["LotExpiry", "expired", "expiring_by_location", "expiring_within", "fefo_order"]
