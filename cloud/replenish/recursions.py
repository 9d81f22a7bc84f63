"""The smoothing recursions behind :mod:`cloud.replenish.forecast` and their grid fit.

Each ``_run_*`` takes ``y`` (S, T) and parameters of shape (G, S) — G candidate values per series —
and returns the in-sample loss (G, S). With ``G == 1`` and ``collect=True`` it also returns the
fitted values (S, T) and the h-step forecasts (S, H). :func:`_fit` evaluates the whole grid in one
vectorised pass and keeps, per series, the parameters with the least loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from cloud.replenish.errors import ForecastInputError

FloatArray = NDArray[np.float64]


Loss = Literal["mse", "mae"]


SEASON = 7  # daily data, weekly pattern


# Candidate parameters of the grid search. Small grids on purpose: the loss surface of these models is
# flat near the optimum, and every extra point multiplies the work of the vectorised pass.
ALPHA_GRID: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7)


INTERMITTENT_ALPHA_GRID: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


TSB_BETA_GRID: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)


HW_ALPHA_GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)


HW_BETA_GRID: tuple[float, ...] = (0.0, 0.02)


HW_GAMMA_GRID: tuple[float, ...] = (0.05, 0.15, 0.3)


@dataclass(slots=True)
class _Run:
    loss: FloatArray
    fitted: FloatArray | None = None
    forecast: FloatArray | None = None


class _LossAcc:
    """Accumulates the one-step loss over the periods where a forecast exists."""

    def __init__(self, shape: tuple[int, int], loss: Loss) -> None:
        self.total = np.zeros(shape)
        self.count = np.zeros(shape)
        self.square = loss == "mse"

    def add(self, err: FloatArray, valid: NDArray[np.bool_] | None = None) -> None:
        term = err * err if self.square else np.abs(err)
        if valid is None:
            self.total += term
            self.count += 1.0
        else:
            self.total += np.where(valid, term, 0.0)
            self.count += valid

    def result(self) -> FloatArray:
        with np.errstate(invalid="ignore", divide="ignore"):
            # No forecastable period (a single demand): every candidate is as good; prefer none.
            return np.where(self.count > 0, self.total / np.maximum(self.count, 1.0), 0.0)


def _run_ses(y: FloatArray, p: Mapping[str, FloatArray], loss: Loss, horizon: int, collect: bool) -> _Run:
    alpha = p["alpha"]
    n_series, n_days = y.shape
    level = np.broadcast_to(y[:, 0], alpha.shape).copy()
    acc = _LossAcc(alpha.shape, loss)
    fitted = np.full((n_series, n_days), np.nan) if collect else None
    for t in range(1, n_days):
        if fitted is not None:
            fitted[:, t] = level[0]
        err = y[:, t] - level
        acc.add(err)
        level += alpha * err
    run = _Run(acc.result(), fitted)
    if collect:
        run.forecast = np.repeat(level[0][:, None], horizon, axis=1)
    return run


def _run_croston(
    y: FloatArray, p: Mapping[str, FloatArray], loss: Loss, horizon: int, collect: bool, *, sba: bool
) -> _Run:
    alpha = p["alpha"]
    factor = 1.0 - alpha / 2.0 if sba else np.ones_like(alpha)
    n_series, n_days = y.shape
    size = np.zeros(alpha.shape)
    interval = np.ones(alpha.shape)
    since = np.zeros(n_series)  # periods since the previous demand (or since the start)
    started = np.zeros(n_series, dtype=bool)
    acc = _LossAcc(alpha.shape, loss)
    fitted = np.full((n_series, n_days), np.nan) if collect else None
    for t in range(n_days):
        demand = y[:, t]
        since += 1.0
        if t > 0 and started.any():
            pred = factor * size / interval
            if fitted is not None:
                fitted[:, t] = np.where(started, pred[0], np.nan)
            acc.add(demand - pred, started)
        pos = demand > 0
        if pos.any():
            first = pos & ~started
            upd = (pos & started).astype(np.float64)
            size += alpha * (demand - size) * upd
            interval += alpha * (since - interval) * upd
            size = np.where(first, demand, size)
            interval = np.where(first, since, interval)
            since[pos] = 0.0
            started |= pos
    run = _Run(acc.result(), fitted)
    if collect:
        final = np.where(started, (factor * size / interval)[0], 0.0)
        run.forecast = np.repeat(final[:, None], horizon, axis=1)
    return run


def _run_tsb(y: FloatArray, p: Mapping[str, FloatArray], loss: Loss, horizon: int, collect: bool) -> _Run:
    alpha, beta = p["alpha"], p["beta"]
    n_series, n_days = y.shape
    prob = np.broadcast_to((y[:, 0] > 0).astype(np.float64), alpha.shape).copy()
    size = np.broadcast_to(y[:, 0], alpha.shape).copy()
    started = y[:, 0] > 0
    acc = _LossAcc(alpha.shape, loss)
    fitted = np.full((n_series, n_days), np.nan) if collect else None
    for t in range(1, n_days):
        demand = y[:, t]
        pred = prob * size
        if fitted is not None:
            fitted[:, t] = np.where(started, pred[0], 0.0)
        acc.add(demand - pred, started)
        pos = demand > 0
        prob += beta * (pos - prob)
        if pos.any():
            first = pos & ~started
            size += alpha * (demand - size) * (pos & started)
            size = np.where(first, demand, size)
            started |= pos
    run = _Run(acc.result(), fitted)
    if collect:
        final = np.where(started, (prob * size)[0], 0.0)
        run.forecast = np.repeat(final[:, None], horizon, axis=1)
    return run


def _run_holt_winters(
    y: FloatArray, p: Mapping[str, FloatArray], loss: Loss, horizon: int, collect: bool
) -> _Run:
    alpha, beta, gamma = p["alpha"], p["beta"], p["gamma"]
    m = SEASON
    n_series, n_days = y.shape
    if n_days < 2 * m:
        raise ForecastInputError(f"Holt-Winters needs at least {2 * m} days, got {n_days}")
    first, second = y[:, :m].mean(axis=1), y[:, m : 2 * m].mean(axis=1)
    trended = beta > 0
    level = np.broadcast_to(first, alpha.shape).copy()
    trend = np.where(trended, ((second - first) / m)[None, :], 0.0)
    season = np.broadcast_to(y[:, :m] - first[:, None], (*alpha.shape, m)).copy()
    acc = _LossAcc(alpha.shape, loss)
    fitted = np.full((n_series, n_days), np.nan) if collect else None
    for t in range(m, n_days):
        k = t % m
        demand = y[:, t]
        s_old = season[..., k]
        pred = level + trend + s_old
        if fitted is not None:
            fitted[:, t] = np.maximum(pred[0], 0.0)
        acc.add(demand - pred)
        new_level = alpha * (demand - s_old) + (1.0 - alpha) * (level + trend)
        # Hyndman's form (seasonal error against the previous level and trend), as statsmodels and R's
        # ets() use it, so gamma means the same thing there and here.
        season[..., k] = gamma * (demand - level - trend) + (1.0 - gamma) * s_old
        trend = np.where(trended, beta * (new_level - level) + (1.0 - beta) * trend, 0.0)
        level = new_level
    run = _Run(acc.result(), fitted)
    if collect:
        steps = np.arange(1, horizon + 1)
        idx = (n_days + steps - 1) % m
        path = level[0][:, None] + trend[0][:, None] * steps + season[0][:, idx]
        run.forecast = np.maximum(path, 0.0)
    return run


RunFn = Callable[[FloatArray, Mapping[str, FloatArray], Loss, int, bool], _Run]


def _fit(
    y: FloatArray,
    run: RunFn,
    grids: Mapping[str, Sequence[float]],
    fixed: Mapping[str, float | None],
    loss: Loss,
    horizon: int,
) -> tuple[_Run, dict[str, FloatArray]]:
    """Grid-search the free parameters (one vectorised pass), then rerun with the winners."""
    n_series = y.shape[0]
    names = list(grids)
    axes = [[fixed[n]] if fixed.get(n) is not None else list(grids[n]) for n in names]
    combos = np.array(list(itertools.product(*axes)), dtype=np.float64)  # (G, P)
    if len(combos) > 1:
        grid = {n: np.repeat(combos[:, i : i + 1], n_series, axis=1) for i, n in enumerate(names)}
        best = np.argmin(run(y, grid, loss, horizon, False).loss, axis=0)  # first minimum wins ties
        chosen = combos[best]  # (S, P)
    else:
        chosen = np.repeat(combos, n_series, axis=0)
    params = {n: chosen[:, i].copy() for i, n in enumerate(names)}
    final = run(y, {n: v[None, :] for n, v in params.items()}, loss, horizon, True)
    return final, params
