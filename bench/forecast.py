"""Demand-forecast throughput and accuracy, side by side with statsforecast.

Run: ``.venv/bin/python bench/forecast.py [--series 10000] [--days 730] [--holdout 28]
[--reference-series 1000] [--seed 7]``.

A fixed-seed synthetic panel mixes four demand patterns in equal shares: smooth (Poisson around a
drifting level), weekly-seasonal, intermittent (rare demands of stable size) and lumpy (rare demands of
very variable size). The last ``--holdout`` days are held out; ``cloud.replenish.forecast.forecast``
(``auto``: classification, per-series grid-searched parameters, forecast) runs on all series and the
wall time of that call is ``seconds``. Accuracy is the mean MASE over the holdout (scaled by the in-sample
naive one-step MAE; series with a constant history are left out of both means).

The reference is statsforecast, one model per series chosen by the same rule as ``auto`` (SES optimised,
Holt-Winters AAA with season 7, CrostonSBA, TSB with alpha_d=alpha_p=0.1, since statsforecast's TSB does
not fit its parameters). Its Holt-Winters is an ETS fit per series and far slower, so the reference runs
on a stratified subsample (``--reference-series``, 0 = all); ``mase_subsample`` is ours on exactly that
subsample, for a like-for-like comparison, and ``reference_seconds_per_10k`` extrapolates its time.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.replenish import forecast as fc

PATTERNS = ("smooth", "seasonal", "intermittent", "lumpy")


def synthetic_panel(n_series: int, n_days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(demand, pattern index) for ``n_series`` series; pattern i is series with ``index % 4 == i``."""
    rng = np.random.default_rng(seed)
    kind = np.arange(n_series) % len(PATTERNS)
    t = np.arange(n_days)
    base = rng.uniform(5, 60, n_series)[:, None]
    drift = np.cumsum(rng.normal(0, 0.01, (n_series, n_days)), axis=1)  # slow level changes
    level = base * np.exp(drift)
    phase = rng.integers(0, 7, (n_series, 1))
    amplitude = rng.uniform(0.2, 0.6, n_series)[:, None]
    weekly = 1 + amplitude * np.sin(2 * np.pi * (t + phase) / 7)
    smooth_rate = np.where(kind[:, None] == 1, level * weekly, level)
    demand = rng.poisson(smooth_rate).astype(np.float64)

    p = rng.uniform(0.05, 0.5, n_series)[:, None]
    occurs = rng.random((n_series, n_days)) < p
    stable = np.maximum(1.0, np.round(rng.normal(base / 4, base / 20, (n_series, n_days))))
    volatile = rng.gamma(0.5, base / 2, (n_series, n_days)).round() + 1.0
    demand = np.where(kind[:, None] == 2, occurs * stable, demand)
    demand = np.where(kind[:, None] == 3, occurs * volatile, demand)
    return demand, kind


def mean_finite(values: np.ndarray) -> float:
    return float(np.nanmean(np.where(np.isfinite(values), values, np.nan)))


def reference_forecasts(history: np.ndarray, methods: np.ndarray, horizon: int) -> tuple[np.ndarray, float]:
    """statsforecast's forecasts for each series with its ``methods`` entry, and their wall time."""
    from statsforecast.models import (
        TSB,
        CrostonSBA,
        HoltWinters,
        SimpleExponentialSmoothingOptimized,
    )

    models: dict[str, Any] = {
        "ses": SimpleExponentialSmoothingOptimized(),
        "holt_winters": HoltWinters(season_length=7, error_type="A"),
        "sba": CrostonSBA(),
        "tsb": TSB(alpha_d=0.1, alpha_p=0.1),
    }
    for model in models.values():  # warm-up: first calls compile / load, not part of the timing
        model.forecast(y=history[0], h=horizon)
    out = np.empty((history.shape[0], horizon))
    start = time.perf_counter()
    for i, (row, method) in enumerate(zip(history, methods, strict=True)):
        out[i] = models[str(method)].forecast(y=row, h=horizon)["mean"]
    elapsed = time.perf_counter() - start
    return np.maximum(out, 0.0), elapsed  # clipped like ours: demand forecasts are never negative


def stratified(kind: np.ndarray, size: int) -> np.ndarray:
    if size <= 0 or size >= kind.size:
        return np.arange(kind.size)
    per = max(1, size // len(PATTERNS))
    return np.sort(np.concatenate([np.flatnonzero(kind == k)[:per] for k in range(len(PATTERNS))]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--holdout", type=int, default=28)
    parser.add_argument("--reference-series", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    demand, kind = synthetic_panel(args.series, args.days, args.seed)
    history, actual = demand[:, : -args.holdout], demand[:, -args.holdout :]

    start = time.perf_counter()
    result = fc.forecast(history, "auto", horizon=args.holdout)
    seconds = time.perf_counter() - start
    _, _, mase = fc.holdout_errors(history, actual, result.forecast)

    methods, counts = np.unique(result.method, return_counts=True)
    mix = dict(zip(methods.tolist(), counts.tolist(), strict=True))
    print(f"ours: {args.series} series x {args.days} days in {seconds:.2f} s; methods {mix}")
    for k, name in enumerate(PATTERNS):
        print(f"  {name:12s} mase {mean_finite(mase[kind == k]):.3f}")

    summary: dict[str, object] = {
        "series": args.series,
        "days": args.days,
        "holdout": args.holdout,
        "seconds": round(seconds, 3),
        "mase": round(mean_finite(mase), 4),
    }
    try:
        import statsforecast
    except ImportError:
        summary.update(reference="unavailable", reference_mase=None, reference_seconds=None)
    else:
        rows = stratified(kind, args.reference_series)
        ref, ref_seconds = reference_forecasts(history[rows], result.method[rows], args.holdout)
        _, _, ref_mase = fc.holdout_errors(history[rows], actual[rows], ref)
        for k, name in enumerate(PATTERNS):
            sel = kind[rows] == k
            ours_k, ref_k = mean_finite(mase[rows][sel]), mean_finite(ref_mase[sel])
            print(f"  {name:12s} on subsample: ours {ours_k:.3f}  reference {ref_k:.3f}")
        summary.update(
            reference="statsforecast " + statsforecast.__version__,
            reference_series=int(rows.size),
            mase_subsample=round(mean_finite(mase[rows]), 4),
            reference_mase=round(mean_finite(ref_mase), 4),
            reference_seconds=round(ref_seconds, 3),
            reference_seconds_per_10k=round(ref_seconds * 10_000 / rows.size, 1),
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
