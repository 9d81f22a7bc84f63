"""Stock policies: formulas against hand-computed values, rounding rules, order-date arithmetic."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.replenish import policy as pol
from cloud.replenish.errors import PolicyError

Z95 = 1.6448536269514722


def test_safety_stock_formula_with_lead_time_variability() -> None:
    # L=4, sd_d=3, d=10, sd_L=1: sqrt(4*9 + 100*1) = sqrt(136)
    assert pol.safety_stock(0.95, 4, 10, 3, 1) == pytest.approx(Z95 * math.sqrt(136))
    assert pol.safety_stock(0.95, 4, 10, 3) == pytest.approx(Z95 * 6)  # fixed lead time: z*sd*sqrt(L)
    assert pol.safety_stock(0.4, 4, 10, 3) == 0.0  # below 50 % service no safety stock, never negative
    assert pol.service_z(0.5) == pytest.approx(0.0)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5])
def test_service_level_out_of_range(level: float) -> None:
    with pytest.raises(PolicyError, match="service level"):
        pol.service_z(level)


def test_negative_inputs_rejected() -> None:
    with pytest.raises(PolicyError, match="lead_time_days"):
        pol.safety_stock(0.9, -1, 10, 3)
    with pytest.raises(PolicyError, match="demand_std"):
        pol.safety_stock(0.9, 1, 10, float("nan"))


def test_policy_levels_rop_order_up_to_eoq() -> None:
    p = pol.PolicyInput(demand_mean=10, demand_std=3, lead_time_days=4, review_period_days=3)
    levels = pol.policy_levels(p)
    assert levels.safety_stock == pytest.approx(Z95 * 6)
    assert levels.reorder_point == pytest.approx(40 + Z95 * 6)
    assert levels.order_up_to == pytest.approx(70 + Z95 * 3 * math.sqrt(7))
    assert levels.eoq is None and levels.max_qty == levels.order_up_to
    with_costs = pol.policy_levels(
        pol.PolicyInput(10, 3, 4, review_period_days=3, order_cost=50, holding_cost_per_unit_year=2)
    )
    assert with_costs.eoq is not None
    assert with_costs.eoq == pytest.approx(math.sqrt(2 * 3650 * 50 / 2))  # 427.2
    assert with_costs.max_qty == pytest.approx(with_costs.reorder_point + with_costs.eoq)
    assert pol.eoq(1000, 0, 2) is None and pol.eoq(1000, 10, None) is None


@pytest.mark.parametrize(
    ("need", "pack", "moq", "expected"),
    [
        (1, 12, 50, 60),  # MOQ 50 becomes 5 whole packs
        (61, 12, 50, 72),
        (36.0000000001, 12, 0, 36),  # float noise does not buy an extra pack
        (0, 12, 50, 0),  # no need, no order, whatever the MOQ
        (-5, 1, 0, 0),
        (7.2, 1, 0, 8),
        (2.5, 0.5, 0, 2.5),  # fractional units (kg)
    ],
)
def test_round_order_quantity(need: float, pack: float, moq: float, expected: float) -> None:
    assert pol.round_order_quantity(need, pack, moq) == pytest.approx(expected)


def test_round_order_quantity_rejects_bad_pack() -> None:
    with pytest.raises(PolicyError, match="pack size"):
        pol.round_order_quantity(5, 0)


@given(st.floats(0.01, 1e5), st.sampled_from([1, 6, 12, 24, 0.25]), st.floats(0, 1000))
def test_rounded_quantity_covers_need_in_whole_packs(need: float, pack: float, moq: float) -> None:
    qty = pol.round_order_quantity(need, pack, moq)
    assert qty >= need - 1e-6 and qty >= moq - 1e-6
    assert abs(qty / pack - round(qty / pack)) < 1e-6
    assert qty - pack < max(need, moq) + 1e-6  # not a pack more than needed


def test_projected_stock_and_order_quantity() -> None:
    assert pol.projected_stock(on_hand=50, on_order=20, in_transit=10, reserved=15, expected_demand=40) == 25
    levels = pol.policy_levels(pol.PolicyInput(10, 0, 4))  # ROP 40, up-to 50
    assert pol.order_quantity(levels, position=41) == 0.0
    assert pol.order_quantity(levels, position=40, pack_size=6) == 12.0  # need 10 -> 2 packs
    assert pol.order_quantity(levels, position=-5, pack_size=6) == 60.0  # backorders are covered too


def test_need_date() -> None:
    today = date(2026, 1, 30)
    assert pol.need_date(today, available=100, demand_mean=10, floor=20) == date(2026, 2, 7)
    assert pol.need_date(today, available=10, demand_mean=10, floor=20) == today
    assert pol.need_date(today, available=100, demand_mean=0) is None
    assert pol.need_date(today, available=1e-130, demand_mean=1e-150) == today + timedelta(days=3650)


@pytest.mark.parametrize(
    ("need", "lead", "expected"),
    [
        (date(2026, 3, 2), 3, date(2026, 2, 27)),  # across a non-leap February
        (date(2024, 3, 1), 1, date(2024, 2, 29)),  # leap day
        (date(2026, 1, 2), 5, date(2025, 12, 28)),  # across the year end
        (date(2026, 5, 1), 0, date(2026, 5, 1)),  # zero lead time: order on the need date
        (date(2026, 2, 1), 31, date(2026, 1, 1)),
    ],
)
def test_order_timing_counts_back_across_month_ends(need: date, lead: int, expected: date) -> None:
    timing = pol.order_timing(need, lead, today=date(2020, 1, 1))
    assert timing.order_by == expected
    assert timing.expected_arrival == need and not timing.late


def test_order_timing_never_in_the_past() -> None:
    today = date(2026, 1, 31)
    timing = pol.order_timing(date(2026, 2, 2), 5, today)
    assert timing.late and timing.order_by == today
    assert timing.expected_arrival == date(2026, 2, 5)
    zero = pol.order_timing(date(2026, 1, 30), 0, today)  # need already passed, zero lead time
    assert zero.order_by == today and zero.late


def test_order_timing_on_supplier_order_days() -> None:
    monday, thursday = 0, 3
    # need Wed 2026-03-04, lead 2 -> Mon 2026-03-02 is an order day
    t = pol.order_timing(date(2026, 3, 4), 2, date(2026, 2, 1), order_weekdays={monday, thursday})
    assert t.order_by == date(2026, 3, 2)
    # need Tue 2026-03-03, lead 2 -> Sun 1 Mar is not; back to Thu 26 Feb (across the month end)
    t = pol.order_timing(date(2026, 3, 3), 2, date(2026, 2, 1), order_weekdays={monday, thursday})
    assert t.order_by == date(2026, 2, 26) and t.expected_arrival == date(2026, 2, 28)
    # too late: first order day from today (Fri 27 Feb) on is Mon 2 Mar
    t = pol.order_timing(date(2026, 3, 3), 2, date(2026, 2, 27), order_weekdays={monday, thursday})
    assert t.late and t.order_by == date(2026, 3, 2)
    with pytest.raises(PolicyError, match="weekdays"):
        pol.order_timing(date(2026, 3, 3), 2, date(2026, 2, 27), order_weekdays=set())
    with pytest.raises(PolicyError, match="lead time"):
        pol.order_timing(date(2026, 3, 3), -1, date(2026, 2, 27))


@given(
    st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    st.integers(0, 120),
    st.integers(-200, 200),
    st.frozensets(st.integers(0, 6), min_size=1),
)
def test_order_timing_properties(need: date, lead: int, offset: int, weekdays: frozenset[int]) -> None:
    today = need + timedelta(days=offset)
    t = pol.order_timing(need, lead, today, weekdays)
    assert t.order_by >= today
    assert t.order_by.weekday() in weekdays
    assert t.expected_arrival == t.order_by + timedelta(days=lead)
    if not t.late:
        assert t.expected_arrival <= need
        assert (need - t.expected_arrival).days < 7  # only moved back to the previous order day
