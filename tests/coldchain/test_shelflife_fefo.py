"""Remaining shelf life (Arrhenius, Q10) and FEFO order by the earlier of printed and dynamic expiry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.coldchain.fefo import LotExpiry, expired, expiring_by_location, expiring_within, fefo_order
from cloud.coldchain.mkt import mean_kinetic_temperature
from cloud.coldchain.shelflife import ShelfLifeError, ShelfLifeModel, consumed_seconds, remaining_shelf_life

START = datetime(2026, 3, 1, tzinfo=UTC)
DAY = 86_400.0


def hourly(temps: list[float], start: datetime = START) -> tuple[np.ndarray, np.ndarray]:
    times = start.timestamp() + np.arange(len(temps)) * 3600.0
    return times, np.asarray(temps, dtype=float)


def test_storage_at_the_reference_temperature_ages_in_calendar_time() -> None:
    model = ShelfLifeModel(nominal_days=10, reference_temp_c=5.0)
    times, temps = hourly([5.0] * 49)  # two days of readings
    estimate = remaining_shelf_life(model, times, temps, start=START, now=START + timedelta(days=2))
    assert estimate.consumed_days == pytest.approx(2.0)
    assert estimate.remaining_days == pytest.approx(8.0)
    assert estimate.dynamic_expiry == START + timedelta(days=10)
    assert estimate.effective_expiry == estimate.dynamic_expiry


def test_q10_two_ages_twice_as_fast_ten_degrees_warmer() -> None:
    model = ShelfLifeModel(nominal_days=10, reference_temp_c=5.0, kind="q10", q10=2.0)
    times, temps = hourly([15.0] * 25)
    assert consumed_seconds(model, times, temps) == pytest.approx(2 * DAY)
    colder = ShelfLifeModel(nominal_days=10, reference_temp_c=5.0, kind="q10", q10=3.0)
    assert consumed_seconds(colder, *hourly([-5.0] * 25)) == pytest.approx(DAY / 3)


def test_arrhenius_matches_the_hand_computed_rate() -> None:
    model = ShelfLifeModel(nominal_days=10, reference_temp_c=5.0, activation_energy_kj=83.144)
    # k(25)/k(5) = exp(10000 (1/278.15 - 1/298.15)) = exp(2.4117) = 11.15
    assert float(model.relative_rate([25.0])[0]) == pytest.approx(11.15, abs=0.01)


def test_unobserved_time_is_charged_at_the_reference_or_a_given_temperature() -> None:
    model = ShelfLifeModel(nominal_days=10, reference_temp_c=5.0, kind="q10", q10=2.0)
    times, temps = hourly([5.0] * 25, start=START + timedelta(days=1))  # no readings on day one
    now = START + timedelta(days=3)
    assert remaining_shelf_life(model, times, temps, start=START, now=now).consumed_days == pytest.approx(3)
    worst = remaining_shelf_life(model, times, temps, start=START, now=now, assume_unobserved_c=15.0)
    assert worst.consumed_days == pytest.approx(1 + 2 * 2)


def test_printed_expiry_wins_when_earlier_and_a_warm_history_wins_otherwise() -> None:
    model = ShelfLifeModel(nominal_days=10, reference_temp_c=5.0, kind="q10", q10=2.0)
    times, temps = hourly([25.0] * 25)  # one day at 4x speed: 4 days used
    now = START + timedelta(days=1)
    late_label = remaining_shelf_life(
        model, times, temps, start=START, now=now, printed_expiry=START + timedelta(days=30)
    )
    assert late_label.remaining_days == pytest.approx(6.0)
    assert late_label.effective_expiry == now + timedelta(days=6)
    early_label = remaining_shelf_life(
        model, times, temps, start=START, now=now, printed_expiry=START + timedelta(days=3)
    )
    assert early_label.effective_expiry == START + timedelta(days=3)


def test_bad_models_and_histories_are_refused() -> None:
    with pytest.raises(ShelfLifeError):
        ShelfLifeModel(nominal_days=0)
    model = ShelfLifeModel(nominal_days=5)
    with pytest.raises(ShelfLifeError, match="before"):
        remaining_shelf_life(model, [], [], start=START, now=START - timedelta(days=1))
    with pytest.raises(ShelfLifeError, match="absolute zero"):
        consumed_seconds(model, [0, 1], [5.0, -300.0])


@settings(max_examples=150, deadline=None)
@given(temps=st.lists(st.floats(min_value=-20, max_value=40), min_size=2, max_size=40))
def test_arrhenius_consumption_equals_elapsed_time_at_the_mkt(temps: list[float]) -> None:
    model = ShelfLifeModel(nominal_days=100, reference_temp_c=5.0)
    times, values = hourly(temps)
    mkt = mean_kinetic_temperature(times, values)
    elapsed = times[-1] - times[0]
    expected = elapsed * float(model.relative_rate([mkt])[0])
    assert consumed_seconds(model, times, values) == pytest.approx(expected, rel=1e-9)


# --- FEFO ---------------------------------------------------------------------------------------


def lot(lot_id: str, printed: date | None, dynamic: datetime | None = None, **kw: object) -> LotExpiry:
    return LotExpiry(lot_id, str(kw.pop("product", "vaccine")), printed, dynamic, **kw)  # type: ignore[arg-type]


def test_fefo_uses_the_earlier_of_printed_and_dynamic_expiry() -> None:
    lots = [
        lot("A", date(2026, 6, 1)),
        lot("B", date(2026, 9, 1), datetime(2026, 5, 1, tzinfo=UTC)),  # warm history: goes first
        lot("C", None),  # no date: last
        lot("D", date(2026, 7, 1)),
        lot("E", date(2026, 1, 1), quantity=0),  # not on hand
        lot("X", date(2026, 1, 1), product="insulin"),
    ]
    order = fefo_order(lots)
    assert [item.lot_id for item in order["vaccine"]] == ["B", "A", "D", "C"]
    assert [item.lot_id for item in order["insulin"]] == ["X"]
    assert order["vaccine"][0].expiry_source == "dynamic"
    assert order["vaccine"][1].expiry_source == "printed"


def test_expiring_within_and_expired_per_location() -> None:
    now = datetime(2026, 5, 10, 12, tzinfo=UTC)
    lots = [
        lot("old", date(2026, 5, 1), location="cold-1"),
        lot("today", date(2026, 5, 10), location="cold-1"),  # labelled date: gone at 00:00 that day
        lot("soon", date(2026, 5, 14), location="cold-2"),
        lot("dyn", date(2026, 12, 1), datetime(2026, 5, 12, tzinfo=UTC), location="cold-1"),
        lot("later", date(2026, 8, 1), location="cold-2"),
    ]
    assert [item.lot_id for item in expired(lots, now)] == ["old", "today"]
    assert [item.lot_id for item in expiring_within(lots, now, 7)] == ["dyn", "soon"]
    by_location = expiring_by_location(lots, now, 7)
    assert {k: [item.lot_id for item in v] for k, v in by_location.items()} == {
        "cold-1": ["dyn"],
        "cold-2": ["soon"],
    }
