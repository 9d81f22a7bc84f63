"""The engine decides as the cloud's planner does, shocks do what they say, policies share draws."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date

import numpy as np
import pytest

from cloud.replenish.proposals import ItemState, plan_replenishment
from cloud.whatif.engine import Engine
from cloud.whatif.errors import ScenarioError, ScenarioTooLarge
from cloud.whatif.model import SiteModel
from cloud.whatif.policies import policy_arrays
from cloud.whatif.results import per_run_metrics
from cloud.whatif.run import check_size, simulate, synthetic_model
from cloud.whatif.scenario import Policy, Simulation, load_scenario_text, parse_scenario
from cloud.whatif.shocks import compile_shocks

TODAY = date(2026, 3, 30)  # a Monday, near a month end: order dates are plain day counts either way


def random_items(rng: np.random.Generator, skus: int, locations: list[str]) -> list[ItemState]:
    items = []
    for n in range(skus):
        supplier = None if rng.random() < 0.15 else "S"
        pack, moq = float(rng.choice([1, 6, 12])), float(rng.choice([0, 24]))
        lead, review = int(rng.integers(1, 10)), int(rng.integers(1, 4))
        for loc in locations:
            mean = float(rng.choice([0.0, rng.gamma(2.0, 4.0)]))
            items.append(
                ItemState(
                    product=f"P{n:03d}",
                    location=loc,
                    on_hand=float(rng.integers(0, 120)),
                    demand_mean=mean,
                    demand_std=float(rng.uniform(0, 0.6) * mean),
                    reserved=float(rng.integers(0, 3)),
                    supplier=supplier,
                    lead_time_days=lead if supplier else 0,
                    lead_time_std_days=float(rng.choice([0.0, 1.0])) if supplier else 0.0,
                    unit_cost=2.0,
                    pack_size=pack,
                    moq=moq,
                    service_level=float(rng.choice([0.9, 0.95, 0.99])),
                    review_period_days=float(review),
                    min_qty=float(rng.integers(10, 40)) if rng.random() < 0.1 else None,
                    max_qty=float(rng.integers(40, 90)) if rng.random() < 0.1 else None,
                )
            )
    return items


def model_of(items: list[ItemState], locations: list[str], days: int = 3) -> SiteModel:
    n = len(items)
    return SiteModel(
        site_id="s",
        skus=sorted({i.product for i in items}),
        locations=locations,
        categories=[""] * (n // len(locations)),
        items=items,
        mean_path=np.repeat([[i.demand_mean] for i in items], days, axis=1),
        poisson=np.zeros(n, dtype=bool),
        shelf_life=np.full(n, math.inf),
        lots=[[(i.on_hand, math.inf)] if i.on_hand else [] for i in items],
    )


@pytest.mark.parametrize("locations", [["back", "front", "shelf"], ["a", "b"]])
@pytest.mark.parametrize("seed", range(6))
def test_first_review_orders_exactly_what_the_cloud_planner_proposes(seed: int, locations: list[str]) -> None:
    items = random_items(np.random.default_rng(seed), 40, locations)
    plan = plan_replenishment(items, TODAY)
    model = model_of(items, locations)
    sim = Simulation(days=3, runs=2, randomness=False)
    engine = Engine(model, policy_arrays(model, Policy()), compile_shocks(model, [], 3), sim)
    engine._review(0, np.ones(model.n_items, dtype=bool), None)

    bought: dict[tuple[str, str], tuple[float, int]] = {}
    for draft in plan.purchases:
        for line in draft.lines:
            bought[(line.product, line.location)] = (line.quantity, (line.expected_arrival - TODAY).days)
    moved_in: dict[tuple[str, str], float] = defaultdict(float)
    moved_out: dict[tuple[str, str], float] = defaultdict(float)
    for t in plan.transfers:
        moved_in[(t.product, t.destination)] += t.quantity
        moved_out[(t.product, t.source)] += t.quantity
    assert plan.purchases and plan.transfers  # the draw exercises both paths
    for i, item in enumerate(items):
        key = (item.product, item.location)
        qty, due = bought.get(key, (0.0, 0))
        for run in range(2):
            assert engine.on_order[run, i] == pytest.approx(qty, abs=1e-3), key
            assert engine.in_transit[run, i] == pytest.approx(moved_in[key], abs=1e-3), key
            assert engine.oh[run, i] == pytest.approx(item.on_hand - moved_out[key], abs=1e-3), key
        if qty:
            assert engine.pipe[due % engine.H, 0, i] == pytest.approx(qty, abs=1e-3), key


SITE = """
name = "shocks"
[simulation]
days = 60
runs = 50
seed = 5
[[policies]]
name = "current"
[site]
locations = ["a", "b"]
[[site.suppliers]]
id = "ACME"
lead_time_days = 4
[[site.suppliers]]
id = "Other"
lead_time_days = 2
[[site.products]]
sku = "MILK"
category = "dairy"
supplier = "ACME"
shelf_life_days = 12
pack_size = 6
demand_mean = [20, 10]
demand_std = [5, 3]
on_hand = [100, 60]
[[site.products]]
sku = "RICE"
category = "dry"
supplier = "Other"
demand_mean = [8, 8]
demand_std = [2, 2]
on_hand = [60, 60]
"""


def rows_of(shocks: str, policies: str = "") -> dict[tuple[str, str], dict[str, np.ndarray]]:
    scenario = load_scenario_text(SITE + policies + shocks)
    return {
        (r.scenario, r.policy): per_run_metrics(r.result)
        for r in simulate(scenario, synthetic_model(scenario))
    }


def test_supplier_stop_hurts_only_while_the_supplier_is_out() -> None:
    rows = rows_of(
        '[[shocks]]\nname = "stop"\nkind = "supplier_stop"\nsupplier = "ACME"\nstart = 10\ndays = 20\n'
    )
    base, stop = rows[("baseline", "current")], rows[("stop", "current")]
    assert stop["fill_rate"].mean() < base["fill_rate"].mean() - 0.1
    assert stop["lost_units"].mean() > base["lost_units"].mean() + 200  # MILK sells 30/day, 20 days out


def test_demand_spike_for_a_category_raises_demand_and_shortages() -> None:
    spike = '[[shocks]]\nname = "spike"\nkind = "demand"\ncategories = ["dairy"]\n'
    spike += "factor = 1.4\nstart = 5\ndays = 30\n"
    rows = rows_of(spike)
    base, hit = rows[("baseline", "current")], rows[("spike", "current")]
    assert hit["spend"].mean() > base["spend"].mean()
    assert hit["lost_units"].mean() > base["lost_units"].mean()


def test_route_closure_and_cold_room_failure() -> None:
    shocks = (
        '[[shocks]]\nname = "closed"\nkind = "route_closed"\nlocation = "a"\nstart = 5\ndays = 15\n'
        '[[shocks]]\nname = "cold"\nkind = "cold_room_failure"\nlocation = "b"\nday = 3\nskus = ["MILK"]\n'
    )
    rows = rows_of(shocks)
    base = rows[("baseline", "current")]
    assert rows[("closed", "current")]["stockout_days"].mean() > base["stockout_days"].mean() + 5
    cold = rows[("cold", "current")]
    # Everything MILK had at b on day 3 spoils: 60 units less 3 days of sales (~30), in every run.
    assert (cold["expired_units"] - base["expired_units"]).min() >= 20


def test_price_rise_with_prebuy_spends_less_than_without() -> None:
    price = '[[shocks]]\nname = "price"\nkind = "price"\nskus = ["RICE"]\nfactor = 1.5\nstart = 20\n'
    prebuy = (
        price.replace('name = "price"', 'name = "prebuy"') + "prebuy = {days_before = 3, cover_days = 30}\n"
    )
    rows = rows_of(price + prebuy)
    assert rows[("price", "current")]["spend"].mean() > rows[("baseline", "current")]["spend"].mean()
    assert rows[("prebuy", "current")]["spend"].mean() < rows[("price", "current")]["spend"].mean()


def test_policies_share_random_draws() -> None:
    policies = '[[policies]]\nname = "same"\n[[policies]]\nname = "sl-99"\nservice_level = 0.99\n'
    rows = rows_of("", policies)
    # Same parameters -> the very same runs; a better service level -> better in (almost) every run.
    assert np.array_equal(rows[("baseline", "current")]["fill_rate"], rows[("baseline", "same")]["fill_rate"])
    better = rows[("baseline", "sl-99")]["fill_rate"] >= rows[("baseline", "current")]["fill_rate"]
    assert better.mean() > 0.9


def test_bad_scenarios_are_refused_with_the_field_named() -> None:
    with pytest.raises(ScenarioError, match="TOML"):
        load_scenario_text("name = ")
    with pytest.raises(ScenarioError, match="factor"):
        load_scenario_text(SITE + '[[shocks]]\nkind = "demand"\nfactor = -1\n')
    with pytest.raises(ScenarioError, match="runs"):
        load_scenario_text(SITE.replace("runs = 50", "runs = 1000000"))
    with pytest.raises(ScenarioError, match="unknown supplier"):
        scenario = load_scenario_text(SITE + '[[shocks]]\nkind = "supplier_stop"\nsupplier = "Nope"\n')
        simulate(scenario, synthetic_model(scenario))
    with pytest.raises(ScenarioError, match="baseline"):
        parse_scenario({"site_id": "x", "shocks": [{"kind": "demand", "name": "baseline", "factor": 2}]})


def test_work_bound_counts_items_runs_days_and_rows() -> None:
    scenario = load_scenario_text(SITE + '[[shocks]]\nname = "s"\nkind = "demand"\nfactor = 2\n')
    check_size(scenario, 4, 4 * 50 * 60 * 2)  # 2 rows (baseline + s) x 1 policy: exactly at the limit
    with pytest.raises(ScenarioTooLarge, match="lane-days"):
        check_size(scenario, 4, 4 * 50 * 60 * 2 - 1)


def test_chunks_in_threads_give_the_same_result_as_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloud.whatif import engine

    closed = '[[shocks]]\nname = "closed"\nkind = "route_closed"\nlocation = "a"\nstart = 5\ndays = 9\n'
    scenario = load_scenario_text(SITE + closed)
    model = synthetic_model(scenario)
    plan, policy = compile_shocks(model, scenario.shocks, 40), policy_arrays(model, Policy())
    sim = Simulation(days=40, runs=10, seed=5)
    monkeypatch.setattr(engine, "LANES_PER_CHUNK", 3 * model.n_items)  # 4 chunks: 3 + 3 + 3 + 1 runs
    one, two = (engine.simulate(model, policy, plan, sim, workers=w) for w in (1, 2))
    assert one.runs == two.runs == 10
    for name in one.per_run:
        assert np.array_equal(one.per_run[name], two.per_run[name]), name
    for name in one.per_item:
        assert np.array_equal(one.per_item[name], two.per_item[name]), name
    assert np.array_equal(one.daily_inventory_value, two.daily_inventory_value)
    # The chunks drew different demand (chunk c has its own seed): runs differ across chunks.
    assert len(set(one.per_run["demand"].round(3))) > 4
