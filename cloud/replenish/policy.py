"""Stock policies: safety stock, reorder point, min/max, order-up-to, EOQ, rounding, order dates.

All quantities are in stock units and all rates per day. The formulas are the textbook ones (Silver,
Pyke & Thomas, *Inventory and Production Management*):

* safety stock ``SS = z * sqrt(L * sd_d**2 + d**2 * sd_L**2)`` with ``z`` the standard normal quantile of
  the cycle service level, ``d``/``sd_d`` the mean and standard deviation of daily demand and
  ``L``/``sd_L`` those of the lead time in days;
* reorder point ``ROP = d * L + SS``; order-up-to level ``S = d * (L + R) + SS(L + R)`` for a review
  period ``R``; EOQ ``sqrt(2 * D * K / h)`` when both an order cost ``K`` and a holding cost ``h`` are set;
* dead stock (:class:`DeadStockRule`): received long ago *and* nothing shipped for long;
* inventory position = on hand + on order + in transit - reserved; projected stock subtracts the
  expected demand over a horizon.

Order dates are plain calendar arithmetic on :class:`datetime.date`: ``order_by = need_date - lead
time``, moved back to a day the supplier takes orders, and never before ``today`` (then the proposal is
flagged late and its expected arrival moved accordingly). ``today`` is always passed in so the result is
reproducible and testable around month ends.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from cloud.replenish.errors import PolicyError

ALL_WEEKDAYS: frozenset[int] = frozenset(range(7))  # date.weekday(): Monday 0 .. Sunday 6
MAX_PLAN_DAYS = 3650


def _non_negative(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise PolicyError(f"{name} must be a finite number >= 0, got {value}")


def service_z(service_level: float) -> float:
    """Standard normal quantile of a cycle service level in (0, 1)."""
    if not 0.0 < service_level < 1.0:
        raise PolicyError(f"service level must be strictly between 0 and 1, got {service_level}")
    return NormalDist().inv_cdf(service_level)


def safety_stock(
    service_level: float,
    lead_time_days: float,
    demand_mean: float,
    demand_std: float,
    lead_time_std_days: float = 0.0,
) -> float:
    """``z * sqrt(L * sd_d² + d² * sd_L²)``, never negative (a service level below 50 % gives 0)."""
    _non_negative(
        lead_time_days=lead_time_days,
        demand_mean=demand_mean,
        demand_std=demand_std,
        lead_time_std_days=lead_time_std_days,
    )
    z = service_z(service_level)
    spread = math.sqrt(lead_time_days * demand_std**2 + demand_mean**2 * lead_time_std_days**2)
    return max(0.0, z * spread)


def reorder_point(demand_mean: float, lead_time_days: float, safety: float) -> float:
    """Demand expected over the lead time plus safety stock."""
    _non_negative(demand_mean=demand_mean, lead_time_days=lead_time_days, safety_stock=safety)
    return demand_mean * lead_time_days + safety


def eoq(
    annual_demand: float, order_cost: float | None, holding_cost_per_unit_year: float | None
) -> float | None:
    """Economic order quantity, or ``None`` when the costs are not set (or make it meaningless)."""
    if order_cost is None or holding_cost_per_unit_year is None:
        return None
    _non_negative(annual_demand=annual_demand, order_cost=order_cost, holding_cost=holding_cost_per_unit_year)
    if holding_cost_per_unit_year == 0 or order_cost == 0 or annual_demand == 0:
        return None
    return math.sqrt(2.0 * annual_demand * order_cost / holding_cost_per_unit_year)


def round_order_quantity(quantity: float, pack_size: float = 1.0, moq: float = 0.0) -> float:
    """Round a need up to whole packs, at least the minimum order quantity (itself in whole packs).

    Nothing is ordered for a need of zero or less: the MOQ is a minimum *per order*, not a reason to
    order.
    """
    _non_negative(moq=moq)
    if not math.isfinite(pack_size) or pack_size <= 0:
        raise PolicyError(f"pack size must be > 0, got {pack_size}")
    if not math.isfinite(quantity):
        raise PolicyError(f"quantity must be finite, got {quantity}")
    return float(round_order_quantities(np.float64(quantity), np.float64(pack_size), np.float64(moq)))


def round_order_quantities(
    quantity: NDArray[np.floating] | np.floating,
    pack_size: NDArray[np.floating] | np.floating,
    moq: NDArray[np.floating] | np.floating,
    tolerance: float = 1e-9,
) -> NDArray[np.floating]:
    """:func:`round_order_quantity` over arrays (unchecked: the caller validated the inputs once).

    The one rounding rule of the cloud's proposals and the what-if simulator (:mod:`cloud.whatif`),
    which computes in float32 and so passes a tolerance above float32 noise.
    """
    wanted = np.maximum(quantity, moq)
    # A tolerance keeps 12.000000001 packs (float noise) from becoming 13.
    # Never negative: a need below the tolerance is noise, 0 packs (not -0.0 from ceil(-tiny)).
    packs = np.maximum(np.ceil(wanted / pack_size - tolerance), 0.0)
    # A product with the mask, not np.where: several times faster on large arrays with mixed masks.
    return packs * pack_size * (np.asarray(quantity) > 0)


def inventory_position(on_hand: float, on_order: float, in_transit: float, reserved: float) -> float:
    """What is, or will be, available without a new order."""
    return on_hand + on_order + in_transit - reserved


def projected_stock(
    on_hand: float, on_order: float, in_transit: float, reserved: float, expected_demand: float
) -> float:
    """Inventory position minus the demand expected over the horizon (may be negative: a shortage)."""
    _non_negative(expected_demand=expected_demand)
    return inventory_position(on_hand, on_order, in_transit, reserved) - expected_demand


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """What the policy of one product at one location depends on."""

    demand_mean: float  # units per day (the forecast)
    demand_std: float  # units per day (forecast error or demand variability)
    lead_time_days: float
    lead_time_std_days: float = 0.0
    service_level: float = 0.95
    review_period_days: float = 1.0  # how often the replenishment run looks at this item
    pack_size: float = 1.0
    moq: float = 0.0
    order_cost: float | None = None  # per order
    holding_cost_per_unit_year: float | None = None


@dataclass(frozen=True, slots=True)
class PolicyLevels:
    """Computed levels; ``min_qty`` is the reorder point and ``max_qty`` what an order tops up to."""

    safety_stock: float
    reorder_point: float
    order_up_to: float
    eoq: float | None
    min_qty: float
    max_qty: float


def policy_levels(p: PolicyInput) -> PolicyLevels:
    """Safety stock, ROP, order-up-to level, EOQ and the resulting min/max for one item."""
    _non_negative(review_period_days=p.review_period_days)
    ss = safety_stock(p.service_level, p.lead_time_days, p.demand_mean, p.demand_std, p.lead_time_std_days)
    rop = reorder_point(p.demand_mean, p.lead_time_days, ss)
    cover = p.lead_time_days + p.review_period_days
    ss_cover = safety_stock(p.service_level, cover, p.demand_mean, p.demand_std, p.lead_time_std_days)
    up_to = p.demand_mean * cover + ss_cover
    economic = eoq(p.demand_mean * 365.0, p.order_cost, p.holding_cost_per_unit_year)
    top = max(up_to, rop + economic) if economic is not None else up_to
    return PolicyLevels(ss, rop, up_to, economic, rop, max(top, rop))


def order_quantity(levels: PolicyLevels, position: float, pack_size: float = 1.0, moq: float = 0.0) -> float:
    """Min/max rule: at or below the minimum, order up to the maximum (rounded); otherwise nothing."""
    if position > levels.min_qty:
        return 0.0
    return round_order_quantity(levels.max_qty - position, pack_size, moq)


def need_date(today: date, available: float, demand_mean: float, floor: float = 0.0) -> date | None:
    """The first day on which ``available - demand_mean * days`` falls below ``floor`` (None: never).

    ``today`` itself when it is already below. Dates beyond :data:`MAX_PLAN_DAYS` are capped there: a need
    ten years out is "not soon", and a tiny demand rate must not overflow the calendar.
    """
    _non_negative(demand_mean=demand_mean)
    if available < floor:
        return today
    if demand_mean == 0:
        return None
    days = (available - floor) / demand_mean
    return today + timedelta(days=min(MAX_PLAN_DAYS, math.floor(days)))


@dataclass(frozen=True, slots=True)
class OrderTiming:
    """When to order so that goods arrive by ``need_by``; ``late`` when that is no longer possible."""

    order_by: date
    expected_arrival: date
    need_by: date
    late: bool


def order_timing(
    need_by: date,
    lead_time_days: int,
    today: date,
    order_weekdays: Collection[int] = ALL_WEEKDAYS,
) -> OrderTiming:
    """Order date counted back from the need date, on a day the supplier takes orders, never in the past.

    ``order_weekdays`` are ``date.weekday()`` numbers (Monday 0). If the latest possible order day is
    before ``today``, the order goes out on the first order day from today on and is flagged late.
    """
    if lead_time_days < 0:
        raise PolicyError(f"lead time must be >= 0 days, got {lead_time_days}")
    weekdays = frozenset(order_weekdays)
    if not weekdays or not weekdays <= ALL_WEEKDAYS:
        raise PolicyError(f"order weekdays must be a non-empty subset of 0..6, got {sorted(order_weekdays)}")
    order_by = need_by - timedelta(days=lead_time_days)
    while order_by.weekday() not in weekdays:
        order_by -= timedelta(days=1)
    late = order_by < today
    if late:
        order_by = today
        while order_by.weekday() not in weekdays:
            order_by += timedelta(days=1)
    arrival = order_by + timedelta(days=lead_time_days)
    return OrderTiming(order_by=order_by, expected_arrival=arrival, need_by=need_by, late=late)


@dataclass(frozen=True, slots=True)
class DeadStockRule:
    """Both ages, in days, stock must reach to be dead (cloud.replenish.dead_stock, the planner).

    Goods received less than ``receipt_days`` ago are never dead; older ones are when nothing
    shipped for ``outbound_days`` (counted from the receipt when the last shipment was before it).
    """

    receipt_days: float = 90.0
    outbound_days: float = 90.0

    def is_dead(self, since_receipt: float | None, since_outbound: float | None) -> bool:
        """``since_outbound`` None: never shipped from there (its receipt age stands in)."""
        if since_receipt is None or since_receipt < self.receipt_days:
            return False
        idle = since_receipt if since_outbound is None else min(since_outbound, since_receipt)
        return idle >= self.outbound_days
