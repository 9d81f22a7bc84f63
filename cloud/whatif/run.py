"""Run a scenario: every (shock group, policy) pair on the same random draws; the report as JSON."""

from __future__ import annotations

from typing import Any

from cloud.whatif import engine
from cloud.whatif.errors import ScenarioError, ScenarioTooLarge
from cloud.whatif.model import SiteModel, from_synthetic
from cloud.whatif.policies import policy_arrays
from cloud.whatif.results import Row
from cloud.whatif.scenario import Scenario
from cloud.whatif.shocks import compile_shocks


def check_size(scenario: Scenario, n_items: int, max_lane_days: float) -> None:
    """Refuse more work than ``max_lane_days`` (items x runs x days x rows) before starting."""
    rows = len(scenario.shock_groups()) * len(scenario.policies)
    work = float(n_items) * scenario.simulation.runs * scenario.simulation.days * rows
    if work > max_lane_days:
        raise ScenarioTooLarge(
            f"{n_items} items x {scenario.simulation.runs} runs x {scenario.simulation.days} days x {rows} "
            f"scenario rows = {work:.3g} lane-days, limit {max_lane_days:.3g}: lower runs or days"
        )


def synthetic_model(scenario: Scenario) -> SiteModel:
    if scenario.site is None:
        raise ScenarioError("the scenario has no [site]: give a database (--db) to load site_id")
    return from_synthetic(scenario.site, scenario.simulation.days).perishable_first()


def _check_references(scenario: Scenario, model: SiteModel) -> None:
    suppliers = set(model.suppliers())
    for shock in scenario.shocks:
        supplier = getattr(shock, "supplier", None)
        if supplier is not None and supplier not in suppliers:
            raise ScenarioError(f"shock {shock.name!r}: unknown supplier {supplier!r}")
        location = getattr(shock, "location", None)
        if location is not None and location not in model.locations:
            raise ScenarioError(f"shock {shock.name!r}: unknown location {location!r}")


def simulate(scenario: Scenario, model: SiteModel) -> list[Row]:
    """``model`` must come from :meth:`SiteModel.perishable_first` (the loaders return it so)."""
    _check_references(scenario, model)
    rows = []
    for group, shocks in scenario.shock_groups().items():
        plan = compile_shocks(model, shocks, scenario.simulation.days)
        for policy in scenario.policies:
            result = engine.simulate(model, policy_arrays(model, policy), plan, scenario.simulation)
            rows.append(Row(group, policy.name, scenario.simulation.unmet, result))
    return rows


def report(
    scenario: Scenario, model: SiteModel, rows: list[Row], sku_pattern: str | None = None
) -> dict[str, Any]:
    return {
        "scenario": scenario.name,
        "site": model.site_id,
        "skus": len(model.skus),
        "locations": model.locations,
        "days": scenario.simulation.days,
        "runs": scenario.simulation.runs,
        "scenarios": [row.to_json(model, sku_pattern) for row in rows],
    }
