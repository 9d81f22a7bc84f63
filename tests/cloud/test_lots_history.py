"""Pure lot-history rules: stays, sample-and-hold pieces, gaps, several sensors, excursions, MKT."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.coldchain import lot_history as lh
from cloud.coldchain.mkt import mean_kinetic_temperature
from cloud.coldchain.shelflife import ShelfLifeModel, remaining_shelf_life

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = 3600.0
BASE = T0.timestamp()


def usp_mkt(pairs: list[tuple[float, float]], dh: float = 83.144) -> float:
    """MKT of (hours, °C) pairs by the USP formula with time weights, written out longhand."""
    e_over_r = dh / 8.3144e-3
    total = sum(hours for hours, _ in pairs)
    mean = sum(hours * math.exp(-e_over_r / (c + 273.15)) for hours, c in pairs) / total
    return e_over_r / -math.log(mean) - 273.15


def test_stays_follow_movements_and_leaving_the_site() -> None:
    moves = [
        lh.Move("E1", "s", "cold", T0),
        lh.Move("E1", "s", "dock", T0 + timedelta(hours=10)),
        lh.Move("E1", "s", None, T0 + timedelta(hours=12)),  # left the site
        lh.Move("E2", "s", "cold", T0),
    ]
    stays = lh.stays_of(reversed(moves), T0 + timedelta(hours=20))
    assert stays["E1"] == (
        lh.Stay("s", "cold", BASE, BASE + 10 * H),
        lh.Stay("s", "dock", BASE + 10 * H, BASE + 12 * H),
    )
    assert stays["E2"] == (lh.Stay("s", "cold", BASE, BASE + 20 * H, open=True),)
    paths = lh.paths_of(stays | {"E3": stays["E2"]})
    assert sorted(paths.values()) == [["E1"], ["E2", "E3"]]


def test_hold_pieces_start_from_the_reading_before_and_stop_at_gaps() -> None:
    readings = [
        lh.Reading("p", BASE - 600, 4.0),
        lh.Reading("p", BASE + 600, 6.0),
        lh.Reading("p", BASE + 9000, 7.0),
    ]
    pieces = lh.hold_pieces(readings, BASE, BASE + 10_000, max_gap_s=1800)
    # 4.0 from before the stay covers its start; 6.0 holds 30 min only; 7.0 until the stay ends.
    assert pieces == [
        (BASE, BASE + 600, 4.0),
        (BASE + 600, BASE + 2400, 6.0),
        (BASE + 9000, BASE + 10_000, 7.0),
    ]


def test_two_sensors_give_warmest_and_coldest() -> None:
    readings = [
        lh.Reading("a", BASE, 5.0),
        lh.Reading("b", BASE + 300, 9.0),
        lh.Reading("a", BASE + 600, 1.0),
    ]
    pieces = lh.zone_pieces(readings, BASE, BASE + 900, max_gap_s=1800)
    assert [(p.start - BASE, p.end - BASE, p.hi, p.lo) for p in pieces] == [
        (0, 300, 5.0, 5.0),
        (300, 600, 9.0, 5.0),
        (600, 900, 9.0, 1.0),
    ]
    exc = lh.excursions(pieces, 2.0, 8.0)
    assert (exc.above_s, exc.below_s) == (600.0, 300.0)


def test_two_hours_at_12_in_a_2_to_8_product() -> None:
    cold = [lh.Reading("c", BASE + m * 600, 5.0) for m in range(0, 61)]  # 10 h
    dock = [lh.Reading("d", BASE + 10 * H + m * 600, 12.0) for m in range(12)]  # 10:00 .. 11:50
    pieces = lh.zone_pieces(cold, BASE, BASE + 10 * H, location="cold") + lh.zone_pieces(
        dock, BASE + 10 * H, BASE + 12 * H, location="dock"
    )
    exc = lh.excursions(pieces, 2.0, 8.0)
    assert exc.above_s == 2 * H and exc.below_s == 0
    assert [(e.location, e.start - BASE, e.duration, e.peak) for e in exc.episodes] == [
        ("dock", 10 * H, 2 * H, 12.0)
    ]
    mkt = lh.mkt_of(pieces)
    assert mkt == pytest.approx(usp_mkt([(10, 5.0), (2, 12.0)]), abs=1e-9)
    assert mkt is not None and 5.0 < mkt < 12.0
    assert lh.mkt_of(lh.clip(pieces, BASE + 9 * H, BASE + 12 * H)) == pytest.approx(
        usp_mkt([(1, 5), (2, 12)])
    )
    assert lh.mkt_of(lh.clip(pieces, BASE + 10 * H, BASE + 12 * H)) == pytest.approx(12.0)
    assert lh.mkt_of(pieces, 150.0) == pytest.approx(usp_mkt([(10, 5.0), (2, 12.0)], 150.0))
    assert lh.mkt_of(pieces, 150.0) > mkt  # a larger ΔH weighs the warm time more


def test_a_gap_splits_an_excursion_and_is_not_counted() -> None:
    readings = [lh.Reading("p", BASE, 10.0), lh.Reading("p", BASE + 4 * H, 10.0)]
    pieces = lh.zone_pieces(readings, BASE, BASE + 5 * H, max_gap_s=1800)
    exc = lh.excursions(pieces, None, 8.0)
    assert exc.above_s == 1800 + 1800
    assert len(exc.episodes) == 2


def test_hold_series_gives_the_same_consumption_as_the_pieces() -> None:
    model = ShelfLifeModel(nominal_days=10, reference_temp_c=5.0)
    pieces = [lh.Piece(BASE, BASE + 2 * H, 12.0, 12.0), lh.Piece(BASE + 5 * H, BASE + 6 * H, 8.0, 8.0)]
    times, temps = lh.hold_series(pieces, model.reference_temp_c)
    estimate = remaining_shelf_life(
        model, times, temps, start=T0 - timedelta(hours=1), now=T0 + timedelta(hours=10), weighting="hold"
    )
    rate = model.relative_rate([12.0, 8.0])
    expected_h = 2 * rate[0] + 1 * rate[1] + (11 - 3)  # the rest at the reference temperature
    assert estimate.consumed_days == pytest.approx(expected_h / 24)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-20, max_value=40), min_size=2, max_size=30))
def test_equal_spacing_matches_the_tested_mkt(values: list[float]) -> None:
    readings = [lh.Reading("p", BASE + i * 600, v) for i, v in enumerate(values)]
    end = BASE + (len(values) - 1) * 600
    pieces = lh.zone_pieces(readings, BASE, end, max_gap_s=3600)
    times = [r.time for r in readings]
    assert lh.mkt_of(pieces) == pytest.approx(
        mean_kinetic_temperature(times, values, weighting="hold"), abs=1e-6
    )
