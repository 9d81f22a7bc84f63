"""Daily demand forecasting, vectorised across many series.

Every public function takes a 2-D array ``y`` of shape ``(series, days)`` (a 1-D array is one series)
of non-negative daily demand and returns a :class:`ForecastResult` for all series at once. The
recursions run as one Python loop over *days*; each step updates every series and every candidate
parameter in one numpy operation, so 10k series cost about what one series costs in a per-series loop.

Methods and the conventions they follow (so results can be checked against published references):

* ``ses`` — simple exponential smoothing, initial level = first observation (R ``ses(initial="simple")``,
  statsforecast ``SimpleExponentialSmoothing``).
* ``holt_winters`` — additive Holt-Winters with a weekly season (m=7); level = mean of the first season,
  trend = difference of the first two season means / m, season = first season minus level. ``beta == 0``
  means *no trend* (the trend is held at 0, not frozen at its noisy initial value). Forecasts are
  clipped at 0 because demand cannot be negative.
* ``croston`` — classic Croston as R ``forecast::croston``: SES with the same ``alpha`` on the non-zero
  demand sizes and on the inter-demand intervals, both initialised with their first value (the first
  non-zero demand and the first interval, counted from the start of the series); forecast = size /
  interval. statsforecast ``CrostonClassic`` is the same with ``alpha=0.1``.
* ``sba`` — Syntetos-Boylan approximation: Croston times ``1 - alpha/2`` (statsforecast ``CrostonSBA``
  is this with ``alpha=0.1``, factor 0.95).
* ``tsb`` — Teunter-Syntetos-Babai (2011): demand probability smoothed with ``beta`` every period,
  demand size smoothed with ``alpha`` only in periods with demand; forecast = probability * size. The
  probability starts at the indicator of the first period and the size at the first non-zero demand,
  as statsforecast ``TSB(alpha_d=alpha, alpha_p=beta)`` does.
* ``auto`` — classify each series (:func:`classify`) and use Holt-Winters for seasonal smooth/erratic
  series, SES for the other smooth/erratic ones, SBA for intermittent and TSB for lumpy series (TSB
  also decays the forecast of an item that stopped selling, which Croston never does).

Parameters that are not given are fitted per series by a grid search on the in-sample one-step-ahead
MSE (or MAE), evaluated for the whole grid in the same vectorised pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cloud.replenish.errors import ForecastInputError
from cloud.replenish.recursions import (
    ALPHA_GRID,
    HW_ALPHA_GRID,
    HW_BETA_GRID,
    HW_GAMMA_GRID,
    INTERMITTENT_ALPHA_GRID,
    SEASON,
    TSB_BETA_GRID,
    FloatArray,
    Loss,
    _fit,
    _Run,
    _run_croston,
    _run_holt_winters,
    _run_ses,
    _run_tsb,
)

Method = Literal["ses", "holt_winters", "croston", "sba", "tsb", "auto"]


DemandClass = Literal["smooth", "erratic", "intermittent", "lumpy", "none"]


METHODS: tuple[str, ...] = ("ses", "holt_winters", "croston", "sba", "tsb", "auto")


ADI_CUTOFF = 1.32  # Syntetos, Boylan & Croston (2005)


CV2_CUTOFF = 0.49


@dataclass(frozen=True, slots=True)
class Classification:
    """Per-series demand pattern: average demand interval, squared CV of sizes, class, weekly season."""

    adi: FloatArray
    cv2: FloatArray
    label: NDArray[np.str_]
    seasonal: NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ForecastResult:
    """Forecasts and fit diagnostics for ``S`` series of ``T`` days and horizon ``H``.

    ``fitted`` holds the one-step-ahead in-sample forecasts (NaN where the method has no forecast yet,
    e.g. before the first demand for Croston); ``mae``, ``bias`` (mean forecast minus actual, so
    positive = over-forecast) and ``mase`` (MAE over the in-sample MAE of the naive forecast) are computed
    from them. ``params`` maps ``alpha``/``beta``/``gamma`` to per-series arrays, NaN where unused.
    """

    method: NDArray[np.str_]
    forecast: FloatArray
    fitted: FloatArray
    params: dict[str, FloatArray]
    mae: FloatArray
    bias: FloatArray
    mase: FloatArray
    demand_class: NDArray[np.str_] = field(default_factory=lambda: np.array([], dtype=str))

    def series(self, i: int) -> dict[str, object]:
        """One series as plain JSON-able values (what the CLI prints)."""
        params = {k: float(v[i]) for k, v in self.params.items() if not np.isnan(v[i])}
        return {
            "method": str(self.method[i]),
            "forecast": [float(x) for x in self.forecast[i]],
            "params": params,
            "mae": _json_float(self.mae[i]),
            "bias": _json_float(self.bias[i]),
            "mase": _json_float(self.mase[i]),
            "demand_class": str(self.demand_class[i]) if self.demand_class.size else None,
        }


def _json_float(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def as_series(y: ArrayLike) -> FloatArray:
    """Validate demand and return it as a float 2-D array (one row per series)."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ForecastInputError(f"demand is not numeric: {exc}") from exc
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ForecastInputError(f"demand must be 1-D or 2-D (series x days), got {arr.ndim}-D")
    if arr.shape[1] < 2:
        raise ForecastInputError(f"need at least 2 days of demand, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise ForecastInputError("demand contains NaN or infinite values")
    if (arr < 0).any():
        raise ForecastInputError("demand contains negative values (use outbound movements only)")
    return arr


def _check_param(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1) or not np.isfinite(value):
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise ForecastInputError(f"{name} must be in {bound}, got {value}")


def _check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise ForecastInputError(f"horizon must be at least 1, got {horizon}")


def intervals_and_sizes(row: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Croston's decomposition of one series: inter-demand intervals (first counted from the start)."""
    idx = np.flatnonzero(row > 0)
    return np.diff(idx + 1, prepend=0).astype(np.float64), row[idx]


def classify(y: ArrayLike) -> Classification:
    """Syntetos-Boylan classification by ADI and CV², plus a weekly-seasonality flag.

    ADI is the mean inter-demand interval (Croston's intervals, the first counted from the start of the
    series, i.e. ``last demand day / number of demands``). CV² is the squared coefficient of variation of
    the non-zero sizes (sample variance, 0 with fewer than two demands). Series without demand are
    ``"none"``.
    """
    arr = as_series(y)
    n_series, n_days = arr.shape
    pos = arr > 0
    count = pos.sum(axis=1)
    # 1-based day of the last demand; argmax on the reversed mask finds it without a Python loop.
    last = n_days - np.argmax(pos[:, ::-1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        adi = np.where(count > 0, last / np.maximum(count, 1), np.nan)
        sizes = np.where(pos, arr, 0.0)
        mean = sizes.sum(axis=1) / np.maximum(count, 1)
        sq = np.where(pos, (arr - mean[:, None]) ** 2, 0.0).sum(axis=1)
        var = np.where(count > 1, sq / np.maximum(count - 1, 1), 0.0)
        cv2 = np.where(count > 0, var / np.where(mean > 0, mean, 1.0) ** 2, np.nan)
    label = np.full(n_series, "none", dtype="<U12")
    has = count > 0
    frequent = adi < ADI_CUTOFF
    stable = cv2 < CV2_CUTOFF
    label[has & frequent & stable] = "smooth"
    label[has & frequent & ~stable] = "erratic"
    label[has & ~frequent & stable] = "intermittent"
    label[has & ~frequent & ~stable] = "lumpy"
    return Classification(adi=adi, cv2=cv2, label=label, seasonal=weekly_seasonal(arr))


def weekly_seasonal(y: FloatArray, season: int = SEASON) -> NDArray[np.bool_]:
    """True where the day-of-week profile explains a clearly non-random share of the variance.

    Under pure noise the between-weekday share of the variance is about ``(m-1)/(n-1)``; we ask for four
    times that and at least 10 %, over whole weeks only, and at least four weeks of data.
    """
    n_series, n_days = y.shape
    weeks = n_days // season
    if weeks < 4:
        return np.zeros(n_series, dtype=bool)
    tail = y[:, n_days - weeks * season :].reshape(n_series, weeks, season)
    total = tail.reshape(n_series, -1).var(axis=1)
    profile = tail.mean(axis=1)  # (series, weekday); equal group sizes, so its variance is the between part
    between = profile.var(axis=1)
    threshold = max(0.1, 4 * (season - 1) / (weeks * season - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, between / np.where(total > 0, total, 1.0), 0.0)
    return np.asarray(share >= threshold)


def _result(
    y: FloatArray, method: str, run: _Run, params: Mapping[str, FloatArray], klass: NDArray[np.str_] | None
) -> ForecastResult:
    assert run.fitted is not None and run.forecast is not None
    n_series = y.shape[0]
    full = {k: np.full(n_series, np.nan) for k in ("alpha", "beta", "gamma")}
    full.update({k: np.asarray(v, dtype=np.float64) for k, v in params.items()})
    mae, bias, mase = in_sample_errors(y, run.fitted)
    return ForecastResult(
        method=np.full(n_series, method, dtype="<U12"),
        forecast=run.forecast,
        fitted=run.fitted,
        params=full,
        mae=mae,
        bias=bias,
        mase=mase,
        demand_class=klass if klass is not None else classify(y).label,
    )


def ses(y: ArrayLike, *, alpha: float | None = None, horizon: int = 1, loss: Loss = "mse") -> ForecastResult:
    """Simple exponential smoothing; ``alpha`` fitted per series unless given."""
    arr = as_series(y)
    _check_param("alpha", alpha)
    _check_horizon(horizon)
    run, params = _fit(arr, _run_ses, {"alpha": ALPHA_GRID}, {"alpha": alpha}, loss, horizon)
    return _result(arr, "ses", run, params, None)


def holt_winters(
    y: ArrayLike,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    gamma: float | None = None,
    horizon: int = 1,
    loss: Loss = "mse",
) -> ForecastResult:
    """Additive Holt-Winters with a weekly season; ``beta == 0`` fits without trend."""
    arr = as_series(y)
    _check_param("alpha", alpha)
    _check_param("beta", beta, allow_zero=True)
    _check_param("gamma", gamma)
    _check_horizon(horizon)
    grids = {"alpha": HW_ALPHA_GRID, "beta": HW_BETA_GRID, "gamma": HW_GAMMA_GRID}
    fixed = {"alpha": alpha, "beta": beta, "gamma": gamma}
    run, params = _fit(arr, _run_holt_winters, grids, fixed, loss, horizon)
    return _result(arr, "holt_winters", run, params, None)


def croston(
    y: ArrayLike, *, alpha: float | None = None, horizon: int = 1, loss: Loss = "mse"
) -> ForecastResult:
    """Classic Croston (R ``forecast::croston`` conventions)."""
    return _croston_like(y, alpha, horizon, loss, sba=False)


def sba(y: ArrayLike, *, alpha: float | None = None, horizon: int = 1, loss: Loss = "mse") -> ForecastResult:
    """Croston with the Syntetos-Boylan bias correction ``1 - alpha/2``."""
    return _croston_like(y, alpha, horizon, loss, sba=True)


def _croston_like(
    y: ArrayLike, alpha: float | None, horizon: int, loss: Loss, *, sba: bool
) -> ForecastResult:
    arr = as_series(y)
    _check_param("alpha", alpha)
    _check_horizon(horizon)

    def run(a: FloatArray, p: Mapping[str, FloatArray], lo: Loss, h: int, c: bool) -> _Run:
        return _run_croston(a, p, lo, h, c, sba=sba)

    result, params = _fit(arr, run, {"alpha": INTERMITTENT_ALPHA_GRID}, {"alpha": alpha}, loss, horizon)
    return _result(arr, "sba" if sba else "croston", result, params, None)


def tsb(
    y: ArrayLike,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    horizon: int = 1,
    loss: Loss = "mse",
) -> ForecastResult:
    """Teunter-Syntetos-Babai: ``alpha`` smooths demand size, ``beta`` the demand probability."""
    arr = as_series(y)
    _check_param("alpha", alpha)
    _check_param("beta", beta)
    _check_horizon(horizon)
    grids = {"alpha": INTERMITTENT_ALPHA_GRID, "beta": TSB_BETA_GRID}
    run, params = _fit(arr, _run_tsb, grids, {"alpha": alpha, "beta": beta}, loss, horizon)
    return _result(arr, "tsb", run, params, None)


def auto_methods(klass: Classification) -> NDArray[np.str_]:
    """The method ``auto`` uses for each series, from its class and seasonality."""
    method = np.full(klass.label.shape, "ses", dtype="<U12")
    method[np.isin(klass.label, ("smooth", "erratic")) & klass.seasonal] = "holt_winters"
    method[klass.label == "intermittent"] = "sba"
    method[klass.label == "lumpy"] = "tsb"
    return method


def forecast(
    y: ArrayLike,
    method: str = "auto",
    *,
    horizon: int = 1,
    alpha: float | None = None,
    beta: float | None = None,
    gamma: float | None = None,
    loss: Loss = "mse",
) -> ForecastResult:
    """Forecast every series with ``method``; ``auto`` picks per series by demand class."""
    if method not in METHODS:
        raise ForecastInputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    arr = as_series(y)
    _check_horizon(horizon)
    klass = classify(arr)
    if method != "auto":
        one = _by_name(arr, method, horizon, alpha, beta, gamma, loss)
        return _with_class(one, klass.label)
    chosen = auto_methods(klass)
    if len(np.unique(chosen)) == 1:
        return _with_class(_by_name(arr, str(chosen[0]), horizon, alpha, beta, gamma, loss), klass.label)
    parts: list[tuple[NDArray[np.intp], ForecastResult]] = []
    for name in np.unique(chosen):
        rows = np.flatnonzero(chosen == name)
        parts.append((rows, _by_name(arr[rows], str(name), horizon, alpha, beta, gamma, loss)))
    return _with_class(_merge(arr.shape, horizon, parts), klass.label)


def _by_name(
    y: FloatArray,
    method: str,
    horizon: int,
    alpha: float | None,
    beta: float | None,
    gamma: float | None,
    loss: Loss,
) -> ForecastResult:
    if method == "ses":
        return ses(y, alpha=alpha, horizon=horizon, loss=loss)
    if method == "holt_winters":
        return holt_winters(y, alpha=alpha, beta=beta, gamma=gamma, horizon=horizon, loss=loss)
    if method == "croston":
        return croston(y, alpha=alpha, horizon=horizon, loss=loss)
    if method == "sba":
        return sba(y, alpha=alpha, horizon=horizon, loss=loss)
    return tsb(y, alpha=alpha, beta=beta, horizon=horizon, loss=loss)


def _with_class(result: ForecastResult, label: NDArray[np.str_]) -> ForecastResult:
    return ForecastResult(
        method=result.method,
        forecast=result.forecast,
        fitted=result.fitted,
        params=result.params,
        mae=result.mae,
        bias=result.bias,
        mase=result.mase,
        demand_class=label,
    )


def _merge(
    shape: tuple[int, int], horizon: int, parts: Sequence[tuple[NDArray[np.intp], ForecastResult]]
) -> ForecastResult:
    n_series, n_days = shape
    method = np.empty(n_series, dtype="<U12")
    fc = np.empty((n_series, horizon))
    fitted = np.empty((n_series, n_days))
    params = {k: np.full(n_series, np.nan) for k in ("alpha", "beta", "gamma")}
    errs = {k: np.empty(n_series) for k in ("mae", "bias", "mase")}
    for rows, part in parts:
        method[rows] = part.method
        fc[rows] = part.forecast
        fitted[rows] = part.fitted
        for k in params:
            params[k][rows] = part.params[k]
        errs["mae"][rows], errs["bias"][rows], errs["mase"][rows] = part.mae, part.bias, part.mase
    return ForecastResult(method, fc, fitted, params, errs["mae"], errs["bias"], errs["mase"])


def naive_scale(history: FloatArray) -> FloatArray:
    """MASE denominator: in-sample MAE of the one-step naive forecast (NaN for a constant series)."""
    scale = np.abs(np.diff(history, axis=1)).mean(axis=1)
    return np.where(scale > 0, scale, np.nan)


def in_sample_errors(y: FloatArray, fitted: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-series MAE, bias (forecast - actual) and MASE of the one-step in-sample forecasts."""
    valid = np.isfinite(fitted)
    n = valid.sum(axis=1)
    err = np.where(valid, fitted - y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.where(n > 0, np.abs(err).sum(axis=1) / np.maximum(n, 1), np.nan)
        bias = np.where(n > 0, err.sum(axis=1) / np.maximum(n, 1), np.nan)
        mase = mae / naive_scale(y)
    return mae, bias, mase


def holdout_errors(
    history: ArrayLike, actual: ArrayLike, predicted: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-series MAE, bias and MASE of out-of-sample forecasts (MASE scaled by the history's naive MAE)."""
    hist = as_series(history)
    act = np.atleast_2d(np.asarray(actual, dtype=np.float64))
    pred = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    if act.shape != pred.shape or act.shape[0] != hist.shape[0]:
        raise ForecastInputError(
            f"shapes differ: history {hist.shape}, actual {act.shape}, predicted {pred.shape}"
        )
    err = pred - act
    mae = np.abs(err).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return mae, err.mean(axis=1), mae / naive_scale(hist)
