"""The simulator against results no one here wrote.

* Base-stock policy, Poisson demand, fixed lead time L, daily review, backorders: the probability that
  a day ends without backorders is P(D_{L+1} <= S) with D_{L+1} ~ Poisson(lambda (L+1)) (Zipkin,
  *Foundations of Inventory Management*, 2000, ch. 6; Axsäter, *Inventory Control*, 3rd ed., 5.3).
* (s, nQ) policy, normal demand: the fill rate from the normal loss functions (Silver, Pyke & Thomas,
  *Inventory and Production Management in Supply Chains*, 4th ed., 2017, section 7.7; Hadley & Whitin
  1963 for the uniform inventory position of an (s, nQ) policy). With daily review the exact form uses
  the second-order loss function G2 over the protection intervals L and L + 1; its first-order
  approximation is the textbook ``1 - sigma G(k) / Q`` over L + 1/2 days.
* A deterministic ledger (no randomness, no shock), computed by hand.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import pytest

from cloud.whatif.results import interval, per_run_metrics
from cloud.whatif.run import simulate, synthetic_model
from cloud.whatif.scenario import parse_scenario

N = NormalDist()


def poisson_cdf(k: int, lam: float) -> float:
    term = total = math.exp(-lam)
    for i in range(1, k + 1):
        term *= lam / i
        total += term
    return total


def loss1(k: float) -> float:
    """Standard normal first-order loss function G(k) = E[(Z - k)+]."""
    return N.pdf(k) - k * (1 - N.cdf(k))


def loss2(k: float) -> float:
    """Second-order loss function G2(k) = E[(Z - k)+^2] / 2 = integral of G from k to infinity."""
    return 0.5 * ((k * k + 1) * (1 - N.cdf(k)) - k * N.pdf(k))


def one_item(product: dict[str, Any], simulation: dict[str, Any], policy: dict[str, Any], lead: int) -> Any:
    scenario = parse_scenario(
        {
            "name": "textbook",
            "simulation": simulation,
            "policies": [{"name": "p", **policy}],
            "site": {
                "locations": ["store"],
                "suppliers": [{"id": "S", "lead_time_days": lead}],
                "products": [{"sku": "X", "supplier": "S", **product}],
            },
        }
    )
    [row] = simulate(scenario, synthetic_model(scenario))
    return per_run_metrics(row.result), row.result


def test_poisson_base_stock_cycle_service_level() -> None:
    lam, lead, base = 4.0, 3, 20
    # Base stock S as an (s, nQ) policy with Q = 1 and s = S - 1: every day the position goes back to S.
    metrics, _ = one_item(
        {"distribution": "poisson", "demand_mean": lam, "on_hand": base},
        {"days": 400, "runs": 200, "seed": 11, "unmet": "backorder"},
        {"order_rule": "fixed_quantity", "order_quantity": 1, "min_qty": base - 1},
        lead,
    )
    expected = poisson_cdf(base, lam * (lead + 1))
    assert expected == pytest.approx(0.8682, abs=1e-4)  # tabulated Poisson(16) CDF at 20
    mean, low, high = interval(metrics["cycle_service_level"])
    assert low <= expected <= high, (mean, low, high, expected)
    assert high - low < 0.01  # the interval is tight enough to mean something


@pytest.mark.parametrize("k", [0.0, 0.75])
def test_s_nq_fill_rate_matches_the_loss_function_formula(k: float) -> None:
    d, sd, lead, q = 20.0, 6.0, 5, 200.0
    s = d * lead + k * sd * math.sqrt(lead)
    metrics, _ = one_item(
        {"demand_mean": d, "demand_std": sd, "on_hand": s + q / 2},
        {"days": 730, "runs": 100, "seed": 3, "unmet": "backorder"},
        {"order_rule": "fixed_quantity", "order_quantity": q, "min_qty": s},
        lead,
    )

    def shortage(days: float) -> float:  # integral over y in (s, s+Q] of E[(D_days - y)+]
        sigma, mu = sd * math.sqrt(days), d * days
        return sigma**2 * (loss2((s - mu) / sigma) - loss2((s + q - mu) / sigma))

    exact = 1 - (shortage(lead + 1) - shortage(lead)) / (q * d)
    mean, low, high = interval(metrics["fill_rate"])
    assert low <= exact <= high, (mean, low, high, exact)
    sigma_half = sd * math.sqrt(lead + 0.5)
    textbook = 1 - sigma_half * loss1((s - d * (lead + 0.5)) / sigma_half) / q
    assert mean == pytest.approx(textbook, abs=0.01)


def test_deterministic_ledger_by_hand() -> None:
    """Demand 10/day, on hand 50 expiring on day 4, min 30 / max 80, packs of 10, lead time 3 days,
    shelf life 4 days, unit cost 2, lost sales. By hand (position = on hand + on order):

    day 0: position 50, 50 - 10 = 40 > 30: no order; sell 10 -> 40
    day 1: position 40, 40 - 10 <= 30: need 80 - 40 = 40; need date in 40/10 = 4 days, order date
           4 - 3 = 1 day later, so + 10 for that day: 50 (5 packs), arrives day 1 + 1 + 3 = 5 -> 30
    day 2-3: positions 80, 70: no order; -> 20, 10
    day 4: the 10 left expire (expiry day 4): expired 10; sell nothing: lost 10, a stock-out day
    day 5: receive 50 (expire day 9); position 50: no order; -> 40
    day 6: as day 1: order 50, arrives day 10; -> 30.  days 7, 8: -> 20, 10
    day 9: 10 expire, 10 lost.  day 10: receive 50; -> 40.  day 11: order 50 (arrives 15); -> 30
    Totals over 12 days: demand 120, lost 20, expired 20, ordered 150 (spend 300), 2 stock-out days,
    end-of-day stock 40+30+20+10+0+40+30+20+10+0+40+30 = 270 -> average value 270 / 12 * 2 = 45.
    """
    metrics, result = one_item(
        {
            "demand_mean": 10,
            "on_hand": 50,
            "shelf_life_days": 4,
            "unit_cost": 2,
            "pack_size": 10,
            "min_qty": 30,
            "max_qty": 80,
        },
        {"days": 12, "runs": 3, "randomness": False},
        {},
        3,
    )
    run = result.per_run
    assert list(run["demand"]) == [120] * 3
    assert list(run["short"]) == [20] * 3
    assert list(run["expired"]) == [20] * 3
    assert list(run["ordered"]) == [150] * 3
    assert list(run["spend"]) == [300] * 3
    assert list(run["stockout_days"]) == [2] * 3
    assert list(metrics["avg_inventory_value"]) == pytest.approx([45.0] * 3)
    assert list(result.daily_inventory_value) == pytest.approx([80, 60, 40, 20, 0, 80, 60, 40, 20, 0, 80, 60])
    assert list(result.daily_stockouts) == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
