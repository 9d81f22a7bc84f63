"""Mean kinetic temperature (MKT) per USP <1079.2>, for unequally spaced readings.

USP defines, for ``n`` equally spaced readings,

    MKT = (ΔH/R) / -ln( (e^{-ΔH/(R T_1)} + ... + e^{-ΔH/(R T_n)}) / n )

Real loggers drop readings, change their interval and send bursts, so equal weights would let a
burst of readings dominate. We weight each reading's Arrhenius factor ``e^{-ΔH/(R T)}`` by time:

- ``"trapezoid"`` (default): the factor is integrated over time with the trapezoid rule, i.e. the
  interval between two readings carries the mean of their two factors. Note that the *factors* are
  averaged, never the temperatures, so a short warm spike keeps its exponential weight.
- ``"hold"``: sample-and-hold, each reading stands for the time until the next one (the last
  reading has no duration), which is what a logger's display implies.

With equal spacing ``"hold"`` is exactly USP's formula over the first ``n - 1`` readings and
``"trapezoid"`` differs from it only in giving half weight to the first and last reading.

``max_interval_s`` leaves out intervals longer than a data gap: time without readings is not
evidence of any temperature (gaps are alerted on separately).

Constants follow USP: ΔH = 83.144 kJ/mol and R = 8.3144e-3 kJ/(mol·K), so ΔH/R = 10 000 K.
The sum is evaluated as a log-sum-exp, so extreme temperatures neither underflow nor overflow.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

DEFAULT_ACTIVATION_ENERGY_KJ = 83.144
# Accepted ΔH range: real products lie between ~40 and ~200 kJ/mol; a near-zero or subnormal
# value only makes the exponentials overflow.
MIN_ACTIVATION_ENERGY_KJ, MAX_ACTIVATION_ENERGY_KJ = 1.0, 1000.0
GAS_CONSTANT_KJ = 8.3144e-3  # kJ/(mol·K), the value USP <1079.2> uses
ZERO_CELSIUS_K = 273.15
MAX_EPOCH_S = 1e11  # year 5138: anything larger is a unit mix-up (ms, µs) or garbage

Weighting = Literal["trapezoid", "hold"]
FloatArray = npt.NDArray[np.float64]
# Inputs: any 1-D numeric series (lists, numpy arrays of any float dtype).
Series = Sequence[float] | npt.NDArray[Any]


class MktError(ValueError):
    """The readings cannot give a mean kinetic temperature (empty, not finite, below 0 K)."""


def _as_arrays(times_s: Series, temps_c: Series) -> tuple[FloatArray, FloatArray]:
    times = np.asarray(times_s, dtype=np.float64)
    temps = np.asarray(temps_c, dtype=np.float64)
    if times.ndim != 1 or temps.shape != times.shape:
        raise MktError(f"need two equally long 1-D series, got shapes {times.shape} and {temps.shape}")
    if times.size == 0:
        raise MktError("no readings")
    if not (np.isfinite(times).all() and np.isfinite(temps).all()):
        raise MktError("readings must be finite numbers")
    if (temps <= -ZERO_CELSIUS_K).any():
        raise MktError("a temperature is at or below absolute zero")
    order = np.argsort(times, kind="stable")
    times, temps = times[order], temps[order]
    if float(times[-1]) - float(times[0]) == math.inf:  # Python floats: overflow without a warning
        raise MktError("timestamps are too far apart")
    return times, temps


def time_weights(
    times_s: FloatArray, weighting: Weighting = "trapezoid", max_interval_s: float | None = None
) -> FloatArray:
    """Weight of each reading (seconds it stands for); ``times_s`` sorted ascending.

    Falls back to equal weights when the readings span no usable time (a single reading, all at
    one instant, or every interval a gap), which is USP's equal-interval formula.
    """
    intervals = np.diff(times_s)
    if max_interval_s is not None:
        intervals = np.where(intervals > max_interval_s, 0.0, intervals)
    weights = np.zeros_like(times_s)
    if weighting == "trapezoid":
        weights[:-1] += intervals / 2
        weights[1:] += intervals / 2
    elif weighting == "hold":
        weights[:-1] += intervals
    else:
        raise MktError(f"unknown weighting {weighting!r} (trapezoid or hold)")
    if weights.sum() <= 0:
        return np.ones_like(times_s)
    return weights


def log_mean_arrhenius(temps_k: FloatArray, weights: FloatArray, activation_energy_kj: float) -> float:
    """``ln( Σ w_i e^{-ΔH/(R T_i)} / Σ w_i )`` as a numerically stable log-sum-exp."""
    exponents = -(activation_energy_kj / GAS_CONSTANT_KJ) / temps_k
    used = weights > 0
    exponents, w = exponents[used], weights[used]
    peak = exponents.max()
    return float(peak + np.log(np.sum(w * np.exp(exponents - peak))) - np.log(np.sum(w)))


def mean_kinetic_temperature(
    times_s: Series,
    temps_c: Series,
    *,
    activation_energy_kj: float = DEFAULT_ACTIVATION_ENERGY_KJ,
    weighting: Weighting = "trapezoid",
    max_interval_s: float | None = None,
) -> float:
    """MKT in °C of readings at ``times_s`` (epoch seconds, any order) and ``temps_c`` (°C)."""
    if not activation_energy_kj > 0:
        raise MktError("activation energy must be positive")
    times, temps = _as_arrays(times_s, temps_c)
    weights = time_weights(times, weighting, max_interval_s)
    temps_k = temps + ZERO_CELSIUS_K
    log_mean = log_mean_arrhenius(temps_k, weights, activation_energy_kj)
    return (activation_energy_kj / GAS_CONSTANT_KJ) / -log_mean - ZERO_CELSIUS_K


def parse_timestamp(text: str) -> float:
    """Epoch seconds from epoch seconds or ISO-8601 (``Z`` or offset; naive times are UTC)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not (math.isfinite(value) and abs(value) < MAX_EPOCH_S):
            raise ValueError(f"timestamp {text!r} is not a plausible epoch time in seconds")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither epoch seconds nor ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parse_temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"temperature {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"temperature {text.strip()!r} is not finite")
    if value <= -ZERO_CELSIUS_K:
        raise ValueError(f"temperature {value} °C is at or below absolute zero")
    return value


def _looks_like_header(row: list[str]) -> bool:
    if len(row) < 2:
        return False
    try:
        float(row[1])
    except ValueError:
        return True
    return False


def parse_readings_csv(lines: Iterable[str]) -> tuple[FloatArray, FloatArray]:
    """``timestamp,temperature`` rows -> (epoch seconds, °C); a first row that is not data is a header.

    Blank lines are skipped. Any other bad row raises :class:`MktError` naming its 1-based row number.
    """
    times: list[float] = []
    temps: list[float] = []
    rows = csv.reader(lines)
    number = 0
    while True:
        number += 1
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote
            raise MktError(f"row {number}: not CSV: {exc}") from None
        if not row or all(not cell.strip() for cell in row):
            continue
        if number == 1 and _looks_like_header(row):
            continue
        if len(row) != 2:
            raise MktError(f"row {number}: expected 2 columns (timestamp,temperature), got {len(row)}")
        try:
            times.append(parse_timestamp(row[0]))
            temps.append(_parse_temperature(row[1]))
        except ValueError as exc:
            raise MktError(f"row {number}: {exc}") from None
    if not times:
        raise MktError("no readings in the file")
    return np.asarray(times, dtype=np.float64), np.asarray(temps, dtype=np.float64)


def read_readings_csv(path: Path) -> tuple[FloatArray, FloatArray]:
    """Read a CSV file of readings; see :func:`parse_readings_csv`."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return parse_readings_csv(handle)
    except OSError as exc:
        raise MktError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MktError(f"{path} is not UTF-8 text") from None


__all__ = [
    "DEFAULT_ACTIVATION_ENERGY_KJ",
    "GAS_CONSTANT_KJ",
    "MktError",
    "Weighting",
    "log_mean_arrhenius",
    "mean_kinetic_temperature",
    "parse_readings_csv",
    "parse_timestamp",
    "read_readings_csv",
    "time_weights",
]
