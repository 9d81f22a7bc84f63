"""Remaining shelf life of a lot from its temperature history.

A product's nominal shelf life ``L`` holds at its reference temperature ``T_ref``. At temperature
``T`` quality is lost ``k(T)/k(T_ref)`` times as fast:

- Arrhenius: ``k(T)/k(T_ref) = exp(-(Ea/R) (1/T - 1/T_ref))`` (temperatures in kelvin);
- Q10: ``k(T)/k(T_ref) = Q10 ** ((T - T_ref) / 10)``.

The consumed fraction is ``∫ k(T(t))/k(T_ref) dt / L``, integrated over the readings with the
same time weights as the MKT (trapezoid by default, see :mod:`cloud.coldchain.mkt`). Time between
``start`` (production or receipt) and the first reading, and after the last reading up to ``now``,
is unobserved; it is charged at ``assume_unobserved_c`` (default: the reference temperature, i.e.
the lot was stored as labelled). The remaining life is stated at the reference temperature, and
the *dynamic expiry* is ``now + remaining``: when the lot expires if kept as labelled from now on.

For Arrhenius with the MKT's ΔH the consumed time equals elapsed time * k(MKT)/k(T_ref): the MKT is
exactly the constant temperature with the same effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from cloud.coldchain.mkt import (
    DEFAULT_ACTIVATION_ENERGY_KJ,
    GAS_CONSTANT_KJ,
    ZERO_CELSIUS_K,
    FloatArray,
    MktError,
    Series,
    Weighting,
    time_weights,
)

DAY_S = 86_400.0


class ShelfLifeError(ValueError):
    """A shelf-life model or history cannot give an estimate."""


@dataclass(frozen=True, slots=True)
class ShelfLifeModel:
    """How fast one product ages with temperature (configured per product)."""

    nominal_days: float
    reference_temp_c: float = 5.0
    kind: Literal["arrhenius", "q10"] = "arrhenius"
    activation_energy_kj: float = DEFAULT_ACTIVATION_ENERGY_KJ
    q10: float = 2.0

    def __post_init__(self) -> None:
        if not self.nominal_days > 0:
            raise ShelfLifeError("nominal_days must be positive")
        if self.kind == "arrhenius" and not self.activation_energy_kj > 0:
            raise ShelfLifeError("activation_energy_kj must be positive")
        if self.kind == "q10" and not self.q10 > 0:
            raise ShelfLifeError("q10 must be positive")

    def relative_rate(self, temps_c: Series) -> FloatArray:
        """k(T)/k(T_ref) for each temperature (1.0 at the reference temperature)."""
        temps = np.asarray(temps_c, dtype=np.float64)
        if self.kind == "q10":
            return np.asarray(self.q10 ** ((temps - self.reference_temp_c) / 10.0), dtype=np.float64)
        e_over_r = self.activation_energy_kj / GAS_CONSTANT_KJ
        t_ref = self.reference_temp_c + ZERO_CELSIUS_K
        return np.asarray(
            np.exp(-e_over_r * (1.0 / (temps + ZERO_CELSIUS_K) - 1.0 / t_ref)), dtype=np.float64
        )


@dataclass(frozen=True, slots=True)
class ShelfLifeEstimate:
    consumed_days: float  # nominal days used up, at the reference temperature
    remaining_days: float  # may be negative: quality expired before ``now``
    dynamic_expiry: datetime
    printed_expiry: datetime | None
    effective_expiry: datetime  # the earlier of dynamic and printed expiry

    @property
    def consumed_fraction(self) -> float:
        return self.consumed_days / (self.consumed_days + self.remaining_days)


def _seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def consumed_seconds(
    model: ShelfLifeModel,
    times_s: Series,
    temps_c: Series,
    weighting: Weighting = "trapezoid",
) -> float:
    """Nominal seconds of shelf life used up over the observed readings."""
    times = np.asarray(times_s, dtype=np.float64)
    temps = np.asarray(temps_c, dtype=np.float64)
    if times.size == 0:
        return 0.0
    if times.shape != temps.shape or not (np.isfinite(times).all() and np.isfinite(temps).all()):
        raise ShelfLifeError("times and temperatures must be equally long finite series")
    if (temps <= -ZERO_CELSIUS_K).any():
        raise ShelfLifeError("a temperature is at or below absolute zero")
    order = np.argsort(times, kind="stable")
    times, temps = times[order], temps[order]
    if times.size < 2 or times[-1] == times[0]:
        return 0.0
    try:
        weights = time_weights(times, weighting)
    except MktError as exc:
        raise ShelfLifeError(str(exc)) from None
    return float(np.sum(weights * model.relative_rate(temps)))


def remaining_shelf_life(
    model: ShelfLifeModel,
    times_s: Series,
    temps_c: Series,
    *,
    start: datetime,
    now: datetime,
    printed_expiry: datetime | None = None,
    assume_unobserved_c: float | None = None,
    weighting: Weighting = "trapezoid",
) -> ShelfLifeEstimate:
    """Estimate a lot's remaining life at ``now`` from readings since ``start``.

    Readings outside ``[start, now]`` are ignored. See the module docstring for unobserved time.
    """
    start_s, now_s = _seconds(start), _seconds(now)
    if now_s < start_s:
        raise ShelfLifeError("now is before the lot's start")
    times = np.asarray(times_s, dtype=np.float64)
    temps = np.asarray(temps_c, dtype=np.float64)
    if times.shape != temps.shape:
        raise ShelfLifeError("times and temperatures must be equally long")
    inside = (times >= start_s) & (times <= now_s)
    times, temps = times[inside], temps[inside]
    observed = consumed_seconds(model, times, temps, weighting)
    unobserved_s = (now_s - start_s) - (float(times.max() - times.min()) if times.size else 0.0)
    unobserved_temp = model.reference_temp_c if assume_unobserved_c is None else assume_unobserved_c
    unobserved = unobserved_s * float(model.relative_rate([unobserved_temp])[0])
    consumed_days = (observed + unobserved) / DAY_S
    remaining_days = model.nominal_days - consumed_days
    dynamic = datetime.fromtimestamp(now_s, UTC) + timedelta(days=remaining_days)
    printed = (
        printed_expiry
        if printed_expiry is None or printed_expiry.tzinfo
        else printed_expiry.replace(tzinfo=UTC)
    )
    effective = dynamic if printed is None else min(dynamic, printed)
    return ShelfLifeEstimate(consumed_days, remaining_days, dynamic, printed, effective)


__all__ = [
    "ShelfLifeError",
    "ShelfLifeEstimate",
    "ShelfLifeModel",
    "consumed_seconds",
    "remaining_shelf_life",
]
