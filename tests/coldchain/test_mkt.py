"""Mean kinetic temperature: hand-computed values, USP's properties, the CSV command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.coldchain.mkt import MktError, mean_kinetic_temperature, parse_readings_csv
from shelfsense.cli import main

H_OVER_R = 10_000.0  # USP: 83.144 kJ/mol / 8.3144e-3 kJ/(mol K)


def usp_mkt(temps_c: list[float], weights: list[float]) -> float:
    """Plain-Python oracle of the weighted USP formula (no numpy, no log-sum-exp)."""
    total = sum(w * math.exp(-H_OVER_R / (t + 273.15)) for t, w in zip(temps_c, weights, strict=True))
    return H_OVER_R / -math.log(total / sum(weights)) - 273.15


def test_two_equal_intervals_match_the_hand_computed_value() -> None:
    # 20 °C and 30 °C, one interval: trapezoid gives each reading half the interval.
    expected = usp_mkt([20.0, 30.0], [1, 1])
    # hand check: ratio e^{10000(1/293.15-1/303.15)} = 3.081, ln((1+3.081)/2) = 0.713,
    # T = 10000 / (34.112 - 0.713) = 299.41 K, above the 25.0 arithmetic mean
    assert expected == pytest.approx(26.26, abs=0.01)
    assert mean_kinetic_temperature([0, 600], [20.0, 30.0]) == pytest.approx(expected, abs=1e-9)


def test_unequal_intervals_are_weighted_by_time_not_by_count() -> None:
    # 5 °C for an hour, a 1-minute spike to 25 °C, then 5 °C again (sample and hold).
    times = [0.0, 3600.0, 3660.0]
    temps = [5.0, 25.0, 5.0]
    expected = usp_mkt([5.0, 25.0], [3600.0, 60.0])
    assert mean_kinetic_temperature(times, temps, weighting="hold") == pytest.approx(expected, abs=1e-9)
    # The trapezoid splits each interval between its two end readings.
    trapezoid = usp_mkt([5.0, 25.0, 5.0], [1800.0, 1830.0, 30.0])
    assert mean_kinetic_temperature(times, temps) == pytest.approx(trapezoid, abs=1e-9)


def test_a_burst_of_readings_does_not_dominate() -> None:
    # An hour at 5 °C logged once, then ten readings at 25 °C within ten seconds.
    times = [0.0, 3600.0] + [3600.0 + i for i in range(1, 11)]
    temps = [5.0, 5.0] + [25.0] * 10
    time_weighted = mean_kinetic_temperature(times, temps, weighting="hold")
    count_weighted = usp_mkt(temps, [1.0] * len(temps))
    assert time_weighted < 5.5 < count_weighted


def test_activation_energy_changes_the_weighting() -> None:
    temps = [2.0, 8.0, 20.0, 4.0]
    times = [0, 60, 120, 180]
    low = mean_kinetic_temperature(times, temps, activation_energy_kj=40.0)
    high = mean_kinetic_temperature(times, temps, activation_energy_kj=120.0)
    assert low < high  # a higher ΔH weights the warm reading more


def test_gaps_longer_than_max_interval_are_not_evidence() -> None:
    times = [0.0, 600.0, 600.0 + 86_400.0, 87_600.0]
    temps = [5.0, 30.0, 5.0, 5.0]
    with_gap = mean_kinetic_temperature(times, temps, weighting="hold", max_interval_s=3600)
    assert with_gap == pytest.approx(usp_mkt([5.0, 5.0], [600.0, 600.0]), abs=1e-9)


@pytest.mark.parametrize(
    ("times", "temps", "message"),
    [([], [], "no readings"), ([0, 1], [5.0, float("nan")], "finite"), ([0], [-300.0], "absolute zero")],
)
def test_bad_series_are_refused(times: list[float], temps: list[float], message: str) -> None:
    with pytest.raises(MktError, match=message):
        mean_kinetic_temperature(times, temps)


temps_st = st.lists(st.floats(min_value=-40, max_value=60, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(temps=temps_st, steps=st.lists(st.floats(min_value=1, max_value=7200), min_size=60, max_size=60))
def test_mkt_is_at_least_the_time_weighted_mean(temps: list[float], steps: list[float]) -> None:
    times = np.concatenate([[0.0], np.cumsum(steps[: len(temps) - 1])])
    mkt = mean_kinetic_temperature(times, temps, weighting="hold")
    weights = np.append(np.diff(times), 0.0)
    mean = float(np.average(temps, weights=weights)) if weights.sum() > 0 else float(np.mean(temps))
    # Jensen: e^{-a/T} is convex over this range, so the MKT never falls below the mean.
    assert mkt >= mean - 1e-6
    assert min(temps) - 1e-6 <= mkt <= max(temps) + 1e-6


@settings(max_examples=100, deadline=None)
@given(value=st.floats(min_value=-40, max_value=60), count=st.integers(1, 50))
def test_constant_temperature_gives_itself(value: float, count: int) -> None:
    times = np.arange(count) * 37.0
    assert mean_kinetic_temperature(times, [value] * count) == pytest.approx(value, abs=1e-6)


# --- CSV and command line -----------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_command_reads_iso_and_epoch_rows_with_a_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "timestamp,temperature\n"
        "2026-01-01T00:00:00Z,20.0\n"
        "1767225600,20\n"  # the same instant as epoch seconds
        "2026-01-01T00:10:00+00:00,30.0\n"
    )
    code, out, _ = run_cli(capsys, "coldchain", "mkt", "--json", str(path))
    assert code == 0
    result = json.loads(out)
    assert result["readings"] == 3
    assert result["mkt_c"] == pytest.approx(usp_mkt([20.0, 30.0], [1, 1]), abs=1e-3)


def test_command_without_header_and_custom_activation_energy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.csv"
    path.write_text("0,20\n600,30\n")
    code, out, _ = run_cli(capsys, "coldchain", "mkt", "--json", str(path), "--activation-energy", "50")
    expected = (
        50
        / 8.3144e-3
        / -math.log((math.exp(-50 / 8.3144e-3 / 293.15) + math.exp(-50 / 8.3144e-3 / 303.15)) / 2)
        - 273.15
    )
    assert code == 0
    assert json.loads(out) == {"mkt_c": pytest.approx(expected, abs=1e-3), "readings": 2}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("timestamp,temperature\n0,5\nyesterday,5\n", "row 3"),
        ("0,5\n60,warm\n", "row 2: temperature 'warm'"),
        ("0,5,extra\n", "row 1: expected 2 columns"),
        ("0,5\n60,nan\n", "row 2"),
        ("timestamp,temperature\n", "no readings"),
        ("0,5\n60,-274\n", "absolute zero"),
    ],
)
def test_bad_rows_exit_2_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    code, out, err = run_cli(capsys, "coldchain", "mkt", str(path))
    assert code == 2
    assert out == ""
    assert fragment in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "coldchain", "mkt", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "cannot read" in err


def test_parser_skips_blank_lines_and_rejects_nul() -> None:
    times, temps = parse_readings_csv(["0,1\n", "\n", "60,2\n"])
    assert list(times) == [0, 60] and list(temps) == [1, 2]
    with pytest.raises(MktError, match="row 2"):
        parse_readings_csv(["0,5\n", "60,\x005\n"])


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list('0123456789.,-+:TZe \n"x\x00')), max_size=200))
def test_any_text_gives_readings_or_a_clear_error(text: str) -> None:
    try:
        times, temps = parse_readings_csv(text.splitlines(keepends=True))
    except MktError as exc:
        assert str(exc)  # a message for the user, never a traceback
    else:
        assert len(times) == len(temps) >= 1
        assert np.isfinite(mean_kinetic_temperature(times, temps))


def test_millisecond_timestamps_are_refused_not_misread() -> None:
    with pytest.raises(MktError, match="row 1: timestamp '1767225600000000'"):
        parse_readings_csv(["1767225600000000,5\n"])
    with pytest.raises(MktError, match="too far apart"):
        mean_kinetic_temperature([-1.7e308, 1.7e308], [5.0, 6.0])
