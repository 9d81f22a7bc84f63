"""A scenario policy applied to every item: the cloud's own levels, as arrays for the engine.

Levels come from :func:`cloud.replenish.proposals.item_levels` (safety stock, reorder point, order-up-to,
EOQ, the planner's min/max overrides) on the item with the policy's changes, so the simulator orders
exactly as the restocking run would. ``days_of_cover`` replaces the statistical safety stock with
``cover_days`` of forecast demand, built with the same :mod:`cloud.replenish.policy` functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from cloud.replenish import policy as pol
from cloud.replenish.proposals import ItemState, item_levels
from cloud.whatif.model import SiteModel
from cloud.whatif.scenario import Policy

F32 = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PolicyArrays:
    min_qty: F32
    max_qty: F32
    safety_stock: F32
    review: NDArray[np.int32]  # days between two runs that look at the item
    demand_mean: F32  # the forecast the policy plans with (not the simulated demand)
    order_quantity: F32  # fixed_quantity rule: Q (whole packs)
    transfer_first: bool
    fixed_quantity: bool


def _with_policy(item: ItemState, policy: Policy) -> ItemState:
    changes: dict[str, object] = {}
    if policy.service_level is not None:
        changes["service_level"] = policy.service_level
    if policy.review_period_days is not None:
        changes["review_period_days"] = float(policy.review_period_days)
    if policy.min_qty is not None:
        changes["min_qty"] = policy.min_qty
    if policy.max_qty is not None:
        changes["max_qty"] = policy.max_qty
    return replace(item, **changes) if changes else item  # type: ignore[arg-type]


def _days_of_cover_levels(item: ItemState, cover_days: float) -> pol.PolicyLevels:
    ss = cover_days * item.demand_mean
    rop = pol.reorder_point(item.demand_mean, item.lead_time_days, ss)
    up_to = item.demand_mean * (item.lead_time_days + item.review_period_days) + ss
    low = rop if item.min_qty is None else item.min_qty
    high = max(low, up_to if item.max_qty is None else item.max_qty)
    return pol.PolicyLevels(ss, rop, up_to, None, low, high)


def levels_for(item: ItemState, policy: Policy) -> pol.PolicyLevels:
    changed = _with_policy(item, policy)
    if policy.safety_stock_method == "days_of_cover":
        return _days_of_cover_levels(changed, policy.cover_days)
    return item_levels(changed)


def _fixed_quantity(item: ItemState, levels: pol.PolicyLevels, policy: Policy) -> float:
    wanted = policy.order_quantity or levels.eoq or max(levels.max_qty - levels.min_qty, 1.0)
    return pol.round_order_quantity(wanted, item.pack_size, item.moq)


def policy_arrays(model: SiteModel, policy: Policy) -> PolicyArrays:
    n = model.n_items
    low, high, ss, q = (np.zeros(n, dtype=np.float32) for _ in range(4))
    review = np.ones(n, dtype=np.int32)
    for i, item in enumerate(model.items):
        levels = levels_for(item, policy)
        low[i], high[i], ss[i] = levels.min_qty, levels.max_qty, levels.safety_stock
        period = policy.review_period_days or item.review_period_days
        review[i] = max(1, math.ceil(period - 1e-9))
        q[i] = _fixed_quantity(item, levels, policy)
    return PolicyArrays(
        min_qty=low,
        max_qty=high,
        safety_stock=ss,
        review=review,
        demand_mean=np.array([i.demand_mean for i in model.items], dtype=np.float32),
        order_quantity=q,
        transfer_first=policy.transfer_first,
        fixed_quantity=policy.order_rule == "fixed_quantity",
    )
