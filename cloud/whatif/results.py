"""Results per (scenario row, policy): metrics with 95 % intervals over the Monte Carlo runs.

Every metric is computed per run, then reported as the mean over runs with a normal-approximation 95 %
interval of that mean (``mean ± 1.96 · sd / sqrt(runs)``). Units are summed over all items of the site;
values use the items' unit cost.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cloud.whatif.engine import SimResult
from cloud.whatif.model import SiteModel

Z95 = 1.959963984540054
METRICS = (
    "fill_rate",
    "cycle_service_level",
    "stockout_days",
    "lost_units",
    "avg_inventory_value",
    "turnover",
    "expired_units",
    "expired_value",
    "spend",
)


def interval(values: NDArray[np.float64]) -> tuple[float, float, float]:
    """Mean and its 95 % interval (the point itself with one run)."""
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    half = Z95 * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half


def _ratio(num: NDArray[np.float64], den: NDArray[np.float64], empty: float) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), empty)


def per_run_metrics(res: SimResult) -> dict[str, NDArray[np.float64]]:
    r = res.per_run
    lane_days = max(1, res.days * res.active_items)
    return {
        "fill_rate": 1.0 - _ratio(r["short"], r["demand"], 0.0),
        "cycle_service_level": 1.0 - r["stockout_days"] / lane_days,
        "stockout_days": r["stockout_days"],
        "lost_units": r["short"],
        "avg_inventory_value": r["inventory_value"],
        "turnover": _ratio(r["cogs"] * 365.0 / res.days, r["inventory_value"], 0.0),
        "expired_units": r["expired"],
        "expired_value": r["expired_value"],
        "spend": r["spend"],
    }


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    policy: str
    unmet: str
    result: SimResult

    def to_json(self, model: SiteModel, sku_pattern: str | None = None) -> dict[str, Any]:
        metrics = per_run_metrics(self.result)
        out: dict[str, Any] = {"name": self.scenario, "policy": self.policy, "unmet": self.unmet}
        ci: dict[str, list[float]] = {}
        for name in METRICS:
            mean, low, high = interval(metrics[name])
            out[name] = _round(mean)
            ci[name] = [_round(low), _round(high)]
        out["ci95"] = ci
        out["runs"] = self.result.runs
        out["days"] = self.result.days
        out["daily"] = {
            "inventory_value": [_round(x) for x in self.result.daily_inventory_value],
            "stockouts": [_round(x) for x in self.result.daily_stockouts],
        }
        if sku_pattern is not None:
            out["items"] = item_rows(self.result, model, sku_pattern)
        return out


def item_rows(res: SimResult, model: SiteModel, sku_pattern: str) -> list[dict[str, Any]]:
    """Per (sku, location) means over runs, for the SKUs matching an fnmatch pattern."""
    per = {k: v / res.runs for k, v in res.per_item.items()}
    fill = 1.0 - _ratio(per["short"], per["demand"], 0.0)
    rows = []
    for i in range(model.n_items):
        if not fnmatch.fnmatchcase(model.sku_of(i), sku_pattern):
            continue
        cost = model.items[i].unit_cost
        rows.append(
            {
                "sku": model.sku_of(i),
                "location": model.location_of(i),
                "fill_rate": _round(fill[i]),
                "stockout_days": _round(per["stockout_days"][i]),
                "lost_units": _round(per["short"][i]),
                "avg_inventory_value": _round(per["inventory"][i] * cost / res.days),
                "expired_units": _round(per["expired"][i]),
                "spend": _round(per["spend"][i]),
            }
        )
    return rows


def _round(x: float) -> float:
    value = float(x)
    return round(value, 4) if math.isfinite(value) else 0.0


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of the report rows (what the CLI prints)."""
    head = (
        "scenario",
        "policy",
        "fill rate",
        "CSL",
        "out days",
        "lost",
        "avg inv value",
        "turns",
        "expired",
        "spend",
    )
    lines = [head]
    for r in rows:
        low, high = r["ci95"]["fill_rate"]
        lines.append(
            (
                r["name"],
                r["policy"],
                f"{r['fill_rate']:.3f} [{low:.3f},{high:.3f}]",
                f"{r['cycle_service_level']:.3f}",
                f"{r['stockout_days']:.1f}",
                f"{r['lost_units']:.0f}",
                f"{r['avg_inventory_value']:.0f}",
                f"{r['turnover']:.1f}",
                f"{r['expired_units']:.0f}",
                f"{r['spend']:.0f}",
            )
        )
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)
