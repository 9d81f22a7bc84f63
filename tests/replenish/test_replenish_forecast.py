"""Forecasting core against independent references (statsforecast, statsmodels) and hand-computed values.

Tolerances: statsforecast's CrostonClassic / CrostonSBA / TSB / SimpleExponentialSmoothing and statsmodels'
Holt-Winters (with the same initial states) implement the same recursions, so results must agree to
floating-point rounding (1e-9 absolute on values of order 1-100).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cloud.replenish import forecast as fc
from cloud.replenish import recursions as replenish_recursions
from cloud.replenish.errors import ForecastInputError
from cloud.replenish.series_io import parse_series
from shelfsense.cli import main

TOL = 1e-9


def intermittent(seed: int, n_series: int = 30, n_days: int = 150, p: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (rng.random((n_series, n_days)) < p) * rng.poisson(4, (n_series, n_days)).astype(float)
    y[:, 3] += 1.0  # every series has at least one demand early on
    return y


# --- hand-computed -----------------------------------------------------------------------------------


def test_croston_hand_example_r_conventions() -> None:
    # sizes 3,5,2,1 and intervals 2,3,1,2 (first counted from the start); alpha 0.1, both initialised
    # with their first value: z = 3, 3.2, 3.08, 2.872 and p = 2, 2.1, 1.99, 1.991.
    y = [0, 3, 0, 0, 5, 2, 0, 1]
    result = fc.croston(y, alpha=0.1, horizon=3)
    assert result.forecast[0] == pytest.approx([2.872 / 1.991] * 3, abs=1e-12)
    # One-step fitted values: none before the first demand, then z/p of the previous state.
    assert np.isnan(result.fitted[0, :2]).all()
    assert result.fitted[0, 2:5] == pytest.approx([1.5, 1.5, 1.5])
    assert result.fitted[0, 5] == pytest.approx(3.2 / 2.1)
    sba = fc.sba(y, alpha=0.1, horizon=1)
    assert sba.forecast[0, 0] == pytest.approx(0.95 * 2.872 / 1.991, abs=1e-12)


def test_tsb_hand_example() -> None:
    # p0 = 0 (first day has no demand), z starts at the first demand (3).
    y = [0, 3, 0]
    result = fc.tsb(y, alpha=0.5, beta=0.2, horizon=1)
    # t=1: p = 0.2 ; t=2: p = 0.16 ; z = 3 throughout.
    assert result.forecast[0, 0] == pytest.approx(0.16 * 3)


def test_ses_hand_example() -> None:
    result = fc.ses([3, 5, 2, 1], alpha=0.1, horizon=2)
    assert result.forecast[0] == pytest.approx([2.872, 2.872])
    assert result.fitted[0, 1:] == pytest.approx([3.0, 3.2, 3.08])


# --- statsforecast / statsmodels -------------------------------------------------------------------


def test_croston_sba_tsb_ses_match_statsforecast() -> None:
    models = pytest.importorskip("statsforecast.models")
    y = intermittent(1)
    pairs = [
        (fc.croston(y, alpha=0.1, horizon=4), models.CrostonClassic()),
        (fc.sba(y, alpha=0.1, horizon=4), models.CrostonSBA()),
        (fc.tsb(y, alpha=0.1, beta=0.2, horizon=4), models.TSB(alpha_d=0.1, alpha_p=0.2)),
        (fc.ses(y, alpha=0.3, horizon=4), models.SimpleExponentialSmoothing(alpha=0.3)),
    ]
    for ours, model in pairs:
        for i, row in enumerate(y):
            ref = model.forecast(y=row, h=4, fitted=True)
            np.testing.assert_allclose(ours.forecast[i], ref["mean"], atol=TOL, err_msg=repr(model))
            both = np.isfinite(ref["fitted"]) & np.isfinite(ours.fitted[i])
            both[: np.flatnonzero(row)[0] + 1] = False  # before the first demand the conventions differ
            np.testing.assert_allclose(ours.fitted[i][both], ref["fitted"][both], atol=TOL)


def test_holt_winters_matches_statsmodels_with_same_initial_state() -> None:
    holtwinters = pytest.importorskip("statsmodels.tsa.holtwinters")
    rng = np.random.default_rng(2)
    t = np.arange(120)
    y = 20 + 0.05 * t + 5 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1, t.size)
    ours = fc.holt_winters(y, alpha=0.2, beta=0.05, gamma=0.1, horizon=14)
    level0 = y[:7].mean()
    model = holtwinters.ExponentialSmoothing(
        y[7:],
        trend="add",
        seasonal="add",
        seasonal_periods=7,
        initialization_method="known",
        initial_level=level0,
        initial_trend=(y[7:14].mean() - level0) / 7,
        initial_seasonal=y[:7] - level0,
    ).fit(smoothing_level=0.2, smoothing_trend=0.05, smoothing_seasonal=0.1, optimized=False)
    np.testing.assert_allclose(ours.fitted[0, 7:], model.fittedvalues, atol=TOL)
    # At h = m, 2m, ... statsmodels uses the season of the cycle before; the textbook (and we) use the
    # season updated last (see the self-consistency test below). All other steps must agree.
    ref = model.forecast(14)
    steps = [i for i in range(14) if (i + 1) % 7 != 0]
    np.testing.assert_allclose(ours.forecast[0, steps], ref[steps], atol=TOL)


def test_holt_winters_forecast_is_consistent_with_its_own_one_step_forecasts() -> None:
    # Appending the h-step forecasts as data (zero errors) must leave the state unchanged, so the
    # one-step fitted values over the appended days reproduce the h-step path, including h = m.
    rng = np.random.default_rng(3)
    t = np.arange(84)
    y = 30 + 8 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1, t.size)
    first = fc.holt_winters(y, alpha=0.3, beta=0.0, gamma=0.2, horizon=10)
    extended = np.concatenate([y, first.forecast[0]])
    again = fc.holt_winters(extended, alpha=0.3, beta=0.0, gamma=0.2, horizon=1)
    np.testing.assert_allclose(again.fitted[0, -10:], first.forecast[0], atol=1e-9)


# --- fitting, classification, auto ------------------------------------------------------------------


def test_grid_search_picks_the_best_grid_point_per_series() -> None:
    rng = np.random.default_rng(4)
    level = np.cumsum(rng.normal(0, 1, (5, 200)), axis=1) + 50  # random walks favour a large alpha
    noise = 50 + rng.normal(0, 5, (5, 200))  # white noise favours a small alpha
    y = np.clip(np.vstack([level, noise]), 0, None)
    fitted = fc.ses(y)
    losses = np.array(
        [
            np.nanmean((fc.ses(y, alpha=a).fitted - y)[:, 1:] ** 2, axis=1)
            for a in replenish_recursions.ALPHA_GRID
        ]
    )
    best = losses.min(axis=0)
    chosen = np.nanmean((fitted.fitted - y)[:, 1:] ** 2, axis=1)
    np.testing.assert_allclose(chosen, best, rtol=1e-12)
    assert (fitted.params["alpha"][:5] >= 0.5).all()
    assert (fitted.params["alpha"][5:] <= 0.1).all()


def test_classification_cutoffs() -> None:
    n = 140
    smooth = np.full(n, 10.0) + np.tile([0, 1], n // 2)
    erratic = np.tile([1.0, 30.0], n // 2)
    intermittent = np.zeros(n)
    intermittent[::4] = 5.0
    lumpy = np.zeros(n)
    lumpy[::4] = np.tile([1.0, 40.0], n // 8 + 1)[: len(lumpy[::4])]
    none = np.zeros(n)
    result = fc.classify(np.vstack([smooth, erratic, intermittent, lumpy, none]))
    assert list(result.label) == ["smooth", "erratic", "intermittent", "lumpy", "none"]
    assert result.adi[2] == pytest.approx(137 / 35)  # first interval counted from the start: 1, then 4s
    assert result.cv2[2] == 0.0


def test_weekly_season_detected_only_where_present() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(365)
    seasonal = 20 + 6 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 2, t.size)
    flat = 20 + rng.normal(0, 2, t.size)
    assert list(fc.weekly_seasonal(np.vstack([seasonal, flat]))) == [True, False]


def test_auto_picks_by_class_and_keeps_row_order() -> None:
    rng = np.random.default_rng(6)
    t = np.arange(140)
    seasonal = 20 + 6 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1, t.size)
    smooth = 20 + rng.normal(0, 2, t.size)
    sparse = intermittent(7, n_series=1, n_days=140, p=0.2)[0]
    lumpy = sparse * np.tile([1.0, 10.0], 70)
    y = np.clip(np.vstack([seasonal, sparse, smooth, lumpy, np.zeros(140)]), 0, None)
    result = fc.forecast(y, "auto", horizon=7)
    assert list(result.method) == ["holt_winters", "sba", "ses", "tsb", "ses"]
    assert list(result.demand_class[:4]) == ["smooth", "intermittent", "smooth", "lumpy"]
    # each row is exactly what its method gives on that row alone
    alone = fc.sba(y[1:2], horizon=7)
    np.testing.assert_allclose(result.forecast[1], alone.forecast[0])
    assert result.forecast[4] == pytest.approx([0.0] * 7)
    assert np.isnan(result.params["gamma"][1]) and not np.isnan(result.params["gamma"][0])


def test_errors_in_sample_and_holdout() -> None:
    result = fc.ses([3, 5, 2, 1], alpha=0.1)
    # fitted 3, 3.2, 3.08 against 5, 2, 1: errors -2, 1.2, 2.08
    assert result.mae[0] == pytest.approx((2 + 1.2 + 2.08) / 3)
    assert result.bias[0] == pytest.approx((-2 + 1.2 + 2.08) / 3)
    assert result.mase[0] == pytest.approx(result.mae[0] / ((2 + 3 + 1) / 3))
    mae, bias, mase = fc.holdout_errors([[1, 3, 1, 3]], [[2, 2]], [[3, 1]])
    assert (mae[0], bias[0], mase[0]) == pytest.approx((1.0, 0.0, 0.5))


@pytest.mark.parametrize(
    ("y", "kwargs", "match"),
    [
        ([1.0, float("nan"), 2.0], {}, "NaN"),
        ([1.0, -1.0, 2.0], {}, "negative"),
        ([1.0], {}, "at least 2 days"),
        ([1.0, 2.0], {"alpha": 0.0}, "alpha"),
        ([1.0, 2.0], {"horizon": 0}, "horizon"),
        ([[[1.0, 2.0]]], {}, "1-D or 2-D"),
    ],
)
def test_bad_input_is_a_clear_error(y: object, kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ForecastInputError, match=match):
        fc.forecast(y, "ses", **kwargs)  # type: ignore[arg-type]


def test_unknown_method_and_short_holt_winters() -> None:
    with pytest.raises(ForecastInputError, match="unknown method"):
        fc.forecast([1, 2, 3], "arima")
    with pytest.raises(ForecastInputError, match="at least 14 days"):
        fc.holt_winters([1.0] * 10)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 40)), elements=st.floats(0, 1e4)))
def test_any_valid_demand_gives_finite_non_negative_forecasts(y: np.ndarray) -> None:
    for method in ("ses", "croston", "sba", "tsb", "auto"):
        result = fc.forecast(y, method, horizon=3)
        assert result.forecast.shape == (y.shape[0], 3)
        assert np.isfinite(result.forecast).all()
        assert (result.forecast >= 0).all()
        # a forecast never exceeds the largest demand seen (all methods average past demand)
        assert (result.forecast <= y.max(axis=1, keepdims=True) + 1e-9).all()


# --- series file and CLI --------------------------------------------------------------------------


def test_parse_series_layouts() -> None:
    assert parse_series("3\n\n0\n2.5\n") == [3.0, 0.0, 2.5]
    dated = "date,qty\n2026-01-30,2\n2026-02-02,1\n2026-01-30,3\n"
    assert parse_series(dated) == [5.0, 0.0, 0.0, 1.0]  # summed per day, gaps are zero demand
    for bad, match in [("", "no demand"), ("1\n2026-01-01,2\n", "not a mix"), ("2026-13-01,2\n", "ISO date")]:
        with pytest.raises(ForecastInputError, match=match):
            parse_series(bad)


def test_cli_forecast_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.csv"
    path.write_text("0\n3\n0\n0\n5\n2\n0\n1\n")
    assert (
        main(["forecast", "--json", str(path), "--method", "croston", "--alpha", "0.1", "--horizon", "2"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "croston"
    assert out["params"] == {"alpha": 0.1}
    assert out["forecast"] == pytest.approx([2.872 / 1.991] * 2)


def test_cli_forecast_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("1\nlots\n")
    assert main(["forecast", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "line 2" in err
    assert main(["forecast", str(tmp_path / "missing.csv")]) == 2
    assert main(["forecast", str(path.with_name("ok.csv")), "--alpha", "1.5"]) == 2
