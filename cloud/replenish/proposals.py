"""Replenishment proposals from per (product, location) state: transfers first, then purchase drafts.

Pure: the caller reads stock, open orders, open proposals and forecasts from the database, passes them
in with ``today``, and persists the returned :class:`Plan`. Running it again with the returned proposals
passed back as ``open_proposals`` yields nothing new: that is the no-duplicate guarantee.

How a need is handled, per product:

1. For each location: policy levels (:mod:`cloud.replenish.policy`) from its forecast, and the inventory
   position = on hand + on order + in transit - reserved + open proposals for the same need. Open orders
   and proposals are *counted*, so a new proposal only covers what they do not.
2. A location whose position, less the demand of one review period, is at or below its reorder point
   needs ``max - position`` (plus the demand until the order date for a purchase). If an open proposal
   already exists for the same need (same product and location), no new proposal is made; the need is
   reported as *suppressed* with the shortfall the existing proposal leaves, so a planner can raise that one.
3. Transfers are preferred: locations holding physical stock above their own order-up-to level give it to
   the short locations (largest surplus first, most urgent need first).
4. What remains is purchased: rounded to pack sizes and the MOQ, ordered on the date counted back from
   the need date by the supplier lead time (never in the past, flagged late when it cannot arrive in
   time), and grouped into one draft per supplier.

Every transfer and purchase line carries its reasoning (forecast, safety stock, ROP, lead time, dates).
Dead stock (no outbound movement for N days) and slow movers (cover beyond N days) become alerts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from cloud.replenish import policy as pol
from cloud.replenish.errors import PolicyError
from cloud.replenish.rules import Decision, RuleSet

EPS = 1e-9


@dataclass(frozen=True, slots=True)
class ItemState:
    """One product at one location, as the replenishment run sees it."""

    product: str
    location: str
    on_hand: float
    demand_mean: float  # forecast, units per day
    demand_std: float = 0.0  # units per day (forecast error)
    on_order: float = 0.0  # open purchase orders to this location
    in_transit: float = 0.0  # transfers on the way here
    reserved: float = 0.0
    supplier: str | None = None  # None: this location is only replenished by transfers
    lead_time_days: int = 0  # supplier lead time to this location
    lead_time_std_days: float = 0.0
    transfer_lead_time_days: int = 1
    unit_cost: float = 0.0
    pack_size: float = 1.0
    moq: float = 0.0
    service_level: float = 0.95
    review_period_days: float = 1.0
    order_cost: float | None = None
    holding_cost_per_unit_year: float | None = None
    order_weekdays: frozenset[int] = pol.ALL_WEEKDAYS
    last_outbound: date | None = None
    last_receipt: date | None = None  # latest receipt of a unit on hand (None: unknown, taken as old)
    forecast_method: str = ""
    min_qty: float | None = None  # planner's override of the computed reorder point
    max_qty: float | None = None  # planner's override of the computed order-up-to level


@dataclass(frozen=True, slots=True)
class OpenProposal:
    """A proposal already waiting for approval or execution (any kind) for a product at a location."""

    ref: str
    product: str
    location: str  # the destination: the location whose need it covers
    quantity: float


@dataclass(frozen=True, slots=True)
class PlanSettings:
    dead_stock_days: int = 90  # nothing shipped for this long ...
    dead_stock_receipt_days: int = 90  # ... and received at least this long ago (else never dead)
    slow_mover_cover_days: float = 180.0


@dataclass(frozen=True, slots=True)
class Transfer:
    product: str
    source: str
    destination: str
    quantity: float
    reasoning: dict[str, Any]

    @property
    def need_key(self) -> str:
        return need_key(self.product, self.destination)


@dataclass(frozen=True, slots=True)
class PurchaseLine:
    product: str
    location: str
    quantity: float
    value: float
    order_by: date
    expected_arrival: date
    need_by: date
    late: bool
    reasoning: dict[str, Any]

    @property
    def need_key(self) -> str:
        return need_key(self.product, self.location)


@dataclass(frozen=True, slots=True)
class PurchaseDraft:
    """One purchase order draft per supplier; ``decision`` is what the rules say about it."""

    supplier: str
    lines: tuple[PurchaseLine, ...]
    value: float
    order_by: date
    decision: Decision | None = None


@dataclass(frozen=True, slots=True)
class Suppressed:
    product: str
    location: str
    open_refs: tuple[str, ...]
    shortfall: float  # what the open proposals leave uncovered (0: fully covered)


@dataclass(frozen=True, slots=True)
class Alert:
    kind: Literal["dead_stock", "slow_mover", "no_supplier"]
    product: str
    location: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    transfers: tuple[Transfer, ...]
    purchases: tuple[PurchaseDraft, ...]
    suppressed: tuple[Suppressed, ...]
    alerts: tuple[Alert, ...]

    def as_open_proposals(self) -> list[OpenProposal]:
        """This plan's proposals as they will look once stored (to feed the next run)."""
        out = [
            OpenProposal(f"T{i}", t.product, t.destination, t.quantity) for i, t in enumerate(self.transfers)
        ]
        lines = [line for draft in self.purchases for line in draft.lines]
        out += [OpenProposal(f"P{i}", p.product, p.location, p.quantity) for i, p in enumerate(lines)]
        return out


def need_key(product: str, location: str) -> str:
    """The identity of a need: one open proposal per key, whatever its kind (store it unique)."""
    return f"{product}@{location}"


@dataclass(slots=True)
class _Need:
    item: ItemState
    levels: pol.PolicyLevels
    position: float
    need_by: date
    quantity: float  # still to cover
    reasoning: dict[str, Any] = field(default_factory=dict)


def plan_replenishment(
    items: Sequence[ItemState],
    today: date,
    open_proposals: Iterable[OpenProposal] = (),
    settings: PlanSettings | None = None,
    rules: RuleSet | None = None,
) -> Plan:
    """Compute transfers, purchase drafts, suppressed needs and alerts for ``items`` as of ``today``."""
    settings = settings or PlanSettings()
    _check_unique(items)
    open_by_key: dict[str, list[OpenProposal]] = defaultdict(list)
    for proposal in open_proposals:
        open_by_key[need_key(proposal.product, proposal.location)].append(proposal)

    by_product: dict[str, list[ItemState]] = defaultdict(list)
    for item in items:
        by_product[item.product].append(item)

    transfers: list[Transfer] = []
    lines: dict[str, list[PurchaseLine]] = defaultdict(list)
    suppressed: list[Suppressed] = []
    alerts: list[Alert] = [a for item in items for a in _stock_alerts(item, today, settings)]
    for product in sorted(by_product):
        needs, surplus = _needs_and_surplus(by_product[product], today, open_by_key, suppressed)
        transfers += _allocate_transfers(needs, surplus)
        for need in needs:
            if need.quantity <= EPS:
                continue
            if need.item.supplier is None:
                alerts.append(Alert("no_supplier", product, need.item.location, {"uncovered": need.quantity}))
                continue
            line = _purchase_line(need, today)
            if line.quantity > 0:  # a need of float noise rounds to no pack at all
                lines[need.item.supplier].append(line)
    drafts = tuple(_draft(s, tuple(ls), rules) for s, ls in sorted(lines.items()) if ls)
    return Plan(tuple(transfers), drafts, tuple(suppressed), tuple(alerts))


def _check_unique(items: Sequence[ItemState]) -> None:
    seen: set[tuple[str, str]] = set()
    for item in items:
        key = (item.product, item.location)
        if key in seen:
            raise PolicyError(f"product {item.product!r} at {item.location!r} is listed twice")
        seen.add(key)


def item_levels(item: ItemState) -> pol.PolicyLevels:
    """The policy levels of one item: computed from its forecast, or the planner's min/max overrides."""
    levels = _computed_levels(item)
    if item.min_qty is None and item.max_qty is None:
        return levels
    low = levels.min_qty if item.min_qty is None else item.min_qty
    high = max(low, levels.max_qty if item.max_qty is None else item.max_qty)
    return replace(levels, min_qty=low, max_qty=high)


def _computed_levels(item: ItemState) -> pol.PolicyLevels:
    return pol.policy_levels(
        pol.PolicyInput(
            demand_mean=item.demand_mean,
            demand_std=item.demand_std,
            lead_time_days=item.lead_time_days,
            lead_time_std_days=item.lead_time_std_days,
            service_level=item.service_level,
            review_period_days=item.review_period_days,
            pack_size=item.pack_size,
            moq=item.moq,
            order_cost=item.order_cost,
            holding_cost_per_unit_year=item.holding_cost_per_unit_year,
        )
    )


def _needs_and_surplus(
    items: Sequence[ItemState],
    today: date,
    open_by_key: dict[str, list[OpenProposal]],
    suppressed: list[Suppressed],
) -> tuple[list[_Need], dict[str, float]]:
    needs: list[_Need] = []
    surplus: dict[str, float] = {}
    for item in sorted(items, key=lambda i: i.location):
        levels = item_levels(item)
        pending = open_by_key.get(need_key(item.product, item.location), [])
        proposed = sum(p.quantity for p in pending)
        position = pol.inventory_position(item.on_hand, item.on_order, item.in_transit, item.reserved)
        position += proposed
        # Only physical, unreserved stock above this location's own top level can be moved elsewhere.
        free = item.on_hand - item.reserved - levels.max_qty
        # Look ahead one review period: if the position will cross the reorder point before the next run
        # looks again, propose now (with an order date in the future) rather than one run too late.
        projected = position - item.demand_mean * item.review_period_days
        if projected > levels.min_qty + EPS:
            if free > EPS and not pending:
                surplus[item.location] = free
            continue
        shortfall = levels.max_qty - position
        if pending:
            refs = tuple(sorted(p.ref for p in pending))
            suppressed.append(Suppressed(item.product, item.location, refs, max(0.0, shortfall)))
            continue
        need_by = pol.need_date(today, position, item.demand_mean, levels.safety_stock) or today
        reasoning = {
            "forecast_per_day": item.demand_mean,
            "forecast_method": item.forecast_method,
            "demand_std": item.demand_std,
            "safety_stock": levels.safety_stock,
            "reorder_point": levels.reorder_point,
            "order_up_to": levels.max_qty,
            "eoq": levels.eoq,
            "position": position,
            "on_hand": item.on_hand,
            "on_order": item.on_order,
            "in_transit": item.in_transit,
            "reserved": item.reserved,
            "lead_time_days": item.lead_time_days,
            "need_by": need_by.isoformat(),
        }
        needs.append(_Need(item, levels, position, need_by, shortfall, reasoning))
    needs.sort(key=lambda n: (n.need_by, -n.quantity, n.item.location))
    return needs, surplus


def _allocate_transfers(needs: list[_Need], surplus: dict[str, float]) -> list[Transfer]:
    """Cover needs from surplus locations, the most urgent need first, the largest surplus first."""
    transfers: list[Transfer] = []
    for need in needs:
        for source in sorted(surplus, key=lambda s: (-surplus[s], s)):
            if need.quantity <= EPS:
                break
            qty = min(need.quantity, surplus[source])
            if qty <= EPS:
                continue
            surplus[source] -= qty
            need.quantity -= qty
            reasoning = dict(need.reasoning, source_surplus=qty + surplus[source])
            reasoning["transfer_lead_time_days"] = need.item.transfer_lead_time_days
            transfers.append(Transfer(need.item.product, source, need.item.location, qty, reasoning))
    return transfers


def _purchase_line(need: _Need, today: date) -> PurchaseLine:
    item = need.item
    timing = pol.order_timing(need.need_by, item.lead_time_days, today, item.order_weekdays)
    # An order placed later tops up a position that has dropped by the demand until then.
    drop = item.demand_mean * (timing.order_by - today).days
    qty = pol.round_order_quantity(need.quantity + drop, item.pack_size, item.moq)
    reasoning = dict(
        need.reasoning,
        uncovered=need.quantity,
        demand_until_order=drop,
        pack_size=item.pack_size,
        moq=item.moq,
        order_by=timing.order_by.isoformat(),
        expected_arrival=timing.expected_arrival.isoformat(),
        late=timing.late,
    )
    return PurchaseLine(
        product=item.product,
        location=item.location,
        quantity=qty,
        value=qty * item.unit_cost,
        order_by=timing.order_by,
        expected_arrival=timing.expected_arrival,
        need_by=need.need_by,
        late=timing.late,
        reasoning=reasoning,
    )


def _draft(supplier: str, lines: tuple[PurchaseLine, ...], rules: RuleSet | None) -> PurchaseDraft:
    value = sum(line.value for line in lines)
    order_by = min(line.order_by for line in lines)
    decision = None
    if rules is not None:
        facts = {
            "supplier": {"id": supplier},
            "order": {"value": value, "lines": len(lines), "quantity": sum(x.quantity for x in lines)},
        }
        decision = rules.decide(facts)
    return PurchaseDraft(supplier, lines, value, order_by, decision)


def _stock_alerts(item: ItemState, today: date, settings: PlanSettings) -> list[Alert]:
    alerts: list[Alert] = []
    if item.on_hand <= EPS:
        return alerts
    idle = None if item.last_outbound is None else (today - item.last_outbound).days
    received = None if item.last_receipt is None else (today - item.last_receipt).days
    rule = pol.DeadStockRule(settings.dead_stock_receipt_days, settings.dead_stock_days)
    if rule.is_dead(math.inf if received is None else received, idle):
        detail = {
            "on_hand": item.on_hand,
            "days_without_outbound": idle,
            "days_since_receipt": received,
            "value": item.on_hand * item.unit_cost,
        }
        alerts.append(Alert("dead_stock", item.product, item.location, detail))
        return alerts
    cover = math.inf if item.demand_mean <= 0 else item.on_hand / item.demand_mean
    if cover > settings.slow_mover_cover_days:
        detail = {"on_hand": item.on_hand, "cover_days": None if math.isinf(cover) else round(cover, 1)}
        alerts.append(Alert("slow_mover", item.product, item.location, detail))
    return alerts


def days_of_cover(on_hand: float, demand_mean: float) -> float:
    """Days the stock lasts at the forecast rate (``inf`` without demand)."""
    return math.inf if demand_mean <= 0 else on_hand / demand_mean


# --- expiring stock ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiringLot:
    """Units of one lot at one location whose effective expiry (printed or dynamic) is near."""

    lot_id: str
    product: str
    location: str
    quantity: float
    days_left: float  # to the effective expiry
    effective_expiry: str  # ISO-8601, for the reasoning


@dataclass(frozen=True, slots=True)
class ExpiryProposal:
    """Move expiring units to where they sell faster (``transfer``), or sell them off (``markdown``)."""

    kind: Literal["transfer", "markdown"]
    lot: ExpiringLot
    quantity: float
    destination: str | None
    reasoning: dict[str, Any]

    @property
    def need_key(self) -> str:
        # One live suggestion per lot and location, whatever it became (transfer or markdown).
        return f"expiry:{self.lot.lot_id}@{self.lot.location}"


def plan_expiring(lots: Iterable[ExpiringLot], demand: dict[tuple[str, str], float]) -> list[ExpiryProposal]:
    """A suggestion per lot+location whose units will not sell at their location before expiry.

    ``demand`` is the forecast per ``(product, location)`` in units per day. Units the location sells
    before the expiry need nothing. The rest goes to the location with the highest demand for the
    product, if that is higher than here (its own stock is not modelled: the planner decides), else it
    is marked down. Expired units (no days left) are not suggested: they are written off, which the
    ``expired_on_hand`` alert asks for.
    """
    out: list[ExpiryProposal] = []
    for lot in sorted(lots, key=lambda x: (x.product, x.location, x.lot_id)):
        if lot.days_left <= 0 or lot.quantity <= EPS:
            continue
        here = demand.get((lot.product, lot.location), 0.0)
        sells = here * lot.days_left
        excess = math.ceil(lot.quantity - sells - EPS)
        if excess <= 0:
            continue
        others = [
            (rate, loc)
            for (product, loc), rate in demand.items()
            if product == lot.product and loc != lot.location
        ]
        best = max(others, key=lambda x: (x[0], x[1]), default=None)
        reasoning: dict[str, Any] = {
            "reason": "expiring_stock",
            "lot_id": lot.lot_id,
            "effective_expiry": lot.effective_expiry,
            "days_left": round(lot.days_left, 3),
            "on_hand": lot.quantity,
            "forecast_per_day": here,
            "sells_before_expiry": round(sells, 3),
            "excess": excess,
        }
        if best is not None and best[0] > here + EPS:
            reasoning |= {"destination_forecast_per_day": best[0], "why": "higher demand at the destination"}
            out.append(ExpiryProposal("transfer", lot, float(excess), best[1], reasoning))
        else:
            reasoning["why"] = "no location with higher demand for this product"
            out.append(ExpiryProposal("markdown", lot, float(excess), None, reasoning))
    return out
