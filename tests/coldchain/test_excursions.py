"""Excursion rules over reading series: examples from the field and hypothesis properties."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.coldchain.excursions import (
    CumulativeRule,
    DoorOpenPolicy,
    ExcursionConfig,
    ExcursionEvaluator,
    ExcursionEvent,
    InstantRule,
    SingleEventRule,
    cold_chain_rules,
    evaluate,
)

MIN = 60.0


def series(*segments: tuple[float, int], step: float = MIN, start: float = 0.0) -> list[tuple[float, float]]:
    """(value, count) segments of readings ``step`` seconds apart."""
    out: list[tuple[float, float]] = []
    t = start
    for value, count in segments:
        for _ in range(count):
            out.append((t, value))
            t += step
    return out


def of(events: list[ExcursionEvent], rule: str) -> list[tuple[str, float]]:
    return [(e.state, e.at.timestamp()) for e in events if e.rule == rule]


def test_single_event_needs_a_continuous_run_and_clears_with_hysteresis() -> None:
    config = cold_chain_rules(gap_s=None, cumulative_s=None)
    # 10 min at 5 °C, 35 min at 9 °C, 5 min at 7.8 (inside, but within hysteresis), then 5 °C
    readings = series((5.0, 10), (9.0, 35), (7.8, 5), (5.0, 5))
    events = evaluate(config, readings)
    high = [e for e in events if e.rule == "high_single"]
    assert [e.state for e in high] == ["raised", "cleared"]
    assert high[0].at.timestamp() == 10 * MIN + 30 * MIN  # run start + 30 min
    assert high[0].peak == 9.0 and high[0].limit == 8.0
    assert high[1].at.timestamp() == 50 * MIN  # 7.8 > 8 - 0.5 does not clear; 5.0 does
    # a run of 29 min is not an excursion
    assert not evaluate(config, series((5.0, 2), (9.0, 29), (5.0, 3)))


def test_one_spike_is_never_averaged_away() -> None:
    config = cold_chain_rules(gap_s=None)
    readings = series((5.0, 30), (-1.5, 1), (5.0, 30))
    events = evaluate(config, readings)
    assert of(events, "freeze") == [("raised", 30 * MIN), ("cleared", 31 * MIN)]
    assert events[0].peak == -1.5


def test_cumulative_accumulates_over_separate_excursions_and_never_resets() -> None:
    config = ExcursionConfig((CumulativeRule("cum", "above", 8.0, total_s=60 * MIN),))
    # three 25-minute excursions separated by recoveries: 25 + 25 + 10 min = budget
    readings = series((5.0, 5), (9.0, 25), (5.0, 5), (9.0, 25), (5.0, 5), (9.5, 25), (5.0, 30))
    events = evaluate(config, readings)
    assert [(e.state, e.duration_s) for e in events] == [("raised", 60 * MIN)]
    third_start = (5 + 25 + 5 + 25 + 5) * MIN
    assert events[0].at.timestamp() == third_start + 10 * MIN
    assert events[0].peak == 9.5


def test_gap_is_its_own_alert_raised_by_tick_and_cleared_by_the_next_reading() -> None:
    evaluator = ExcursionEvaluator(cold_chain_rules(gap_s=15 * MIN))
    assert evaluator.feed(0.0, 5.0) == []
    assert evaluator.tick(10 * MIN) == []
    raised = evaluator.tick(20 * MIN)
    assert [(e.kind, e.state, e.at.timestamp()) for e in raised] == [("gap", "raised", 15 * MIN)]
    assert evaluator.tick(25 * MIN) == []  # once per gap
    cleared = evaluator.feed(30 * MIN, 5.0)
    assert [(e.kind, e.state, e.duration_s) for e in cleared] == [("gap", "cleared", 30 * MIN)]


def test_a_late_reading_after_silence_reports_the_gap_and_breaks_the_run() -> None:
    config = cold_chain_rules(gap_s=15 * MIN, cumulative_s=None)
    readings = [*series((9.0, 20)), *series((9.0, 20), start=3 * 3600)]
    events = evaluate(config, readings)
    assert [(e.kind, e.state) for e in events] == [("gap", "raised"), ("gap", "cleared")]


def test_door_opening_with_quick_recovery_is_one_info_event() -> None:
    config = cold_chain_rules(gap_s=None, single_event_s=0, door=DoorOpenPolicy(rise_c=3.0, grace_s=10 * MIN))
    readings = series((4.0, 10), (12.0, 3), (9.0, 2), (4.5, 10))
    events = evaluate(config, readings)
    assert [(e.kind, e.state) for e in events] == [("door_open", "info")]
    assert events[0].peak == 12.0
    assert events[0].started_at.timestamp() == 9 * MIN


def test_door_not_recovering_in_grace_raises_afterwards_from_the_original_start() -> None:
    config = cold_chain_rules(gap_s=None, single_event_s=0, door=DoorOpenPolicy(rise_c=3.0, grace_s=5 * MIN))
    readings = series((4.0, 10), (12.0, 20), (4.0, 5))
    events = evaluate(config, readings)
    high = [e for e in events if e.rule == "high_single"]
    assert [e.state for e in high] == ["raised", "cleared"]
    assert high[0].started_at.timestamp() == 10 * MIN
    assert high[0].at.timestamp() == (9 + 5 + 1) * MIN  # first reading after the grace period
    assert not [e for e in events if e.kind == "door_open"]


def test_slow_warming_is_not_a_door() -> None:
    config = cold_chain_rules(gap_s=None, single_event_s=0, door=DoorOpenPolicy(rise_c=3.0, grace_s=10 * MIN))
    readings = [(i * MIN, 4.0 + 0.5 * i) for i in range(20)]
    events = evaluate(config, readings)
    assert [e.state for e in events if e.rule == "high_single"] == ["raised"]


def test_bad_and_out_of_order_readings_are_counted_and_dropped() -> None:
    evaluator = ExcursionEvaluator(cold_chain_rules())
    evaluator.feed(datetime(2026, 1, 1, 0, 10, tzinfo=UTC), 5.0)
    assert evaluator.feed(datetime(2026, 1, 1, 0, 5, tzinfo=UTC), -5.0) == []
    assert evaluator.feed(datetime(2026, 1, 1, 0, 11, tzinfo=UTC), float("nan")) == []
    assert (evaluator.state.dropped_out_of_order, evaluator.state.dropped_not_finite) == (1, 1)


# --- properties ---------------------------------------------------------------------------------

values_st = st.sampled_from([-1.0, 0.2, 1.9, 2.0, 4.0, 7.6, 8.0, 8.1, 9.0, 15.0])
steps_st = st.integers(min_value=0, max_value=40 * 60)


@st.composite
def reading_series(draw: st.DrawFn, max_size: int = 60) -> list[tuple[float, float]]:
    values = draw(st.lists(values_st, min_size=1, max_size=max_size))
    steps = draw(st.lists(steps_st, min_size=len(values), max_size=len(values)))
    t, out = 1_700_000_000.0, []
    for value, step in zip(values, steps, strict=True):
        t += step
        out.append((t, value))
    return out


def hold_runs(readings: list[tuple[float, float]], limit: float) -> list[float]:
    """Brute-force oracle: lengths of runs above ``limit`` under sample-and-hold."""
    runs, start = [], None
    for t, value in readings:
        if value > limit and start is None:
            start = t
        elif value <= limit and start is not None:
            runs.append(t - start)
            start = None
    if start is not None:
        runs.append(readings[-1][0] - start)
    return runs


@settings(max_examples=300, deadline=None)
@given(readings=reading_series(), duration=st.sampled_from([0.0, 600.0, 1800.0]))
def test_single_event_raises_once_per_long_enough_run(
    readings: list[tuple[float, float]], duration: float
) -> None:
    config = ExcursionConfig((SingleEventRule("high", "above", 8.0, duration, hysteresis=0.0),))
    events = evaluate(config, readings)
    raised = [e for e in events if e.state == "raised"]
    assert len(raised) == sum(1 for run in hold_runs(readings, 8.0) if run >= duration)
    assert all(e.duration_s == duration for e in raised)


@settings(max_examples=300, deadline=None)
@given(readings=reading_series())
def test_cumulative_time_is_the_sum_of_hold_intervals_beyond(readings: list[tuple[float, float]]) -> None:
    config = ExcursionConfig((CumulativeRule("cum", "above", 8.0, total_s=1e12),))
    evaluator = ExcursionEvaluator(config)
    for t, value in readings:
        evaluator.feed(t, value)
    expected = sum(b[0] - a[0] for a, b in itertools.pairwise(readings) if a[1] > 8.0)
    assert evaluator.state.rules["cum"].total_s == expected
    assert sum(hold_runs(readings, 8.0)) == expected  # both rules share one notion of time beyond


@settings(max_examples=300, deadline=None)
@given(readings=reading_series())
def test_every_reading_beyond_an_instant_limit_is_seen(readings: list[tuple[float, float]]) -> None:
    config = ExcursionConfig((InstantRule("freeze", "below", 0.0, hysteresis=0.5),))
    events = evaluate(config, readings)
    raised_at = {e.at.timestamp() for e in events if e.state == "raised"}
    for t, value in readings:
        if value < 0.0:  # the reading raised an alert, or one was already open
            assert any(r <= t for r in raised_at)


@settings(max_examples=300, deadline=None)
@given(readings=reading_series(), door=st.booleans(), gap=st.sampled_from([None, 1200.0]))
def test_raised_and_cleared_alternate_per_rule(
    readings: list[tuple[float, float]], door: bool, gap: float | None
) -> None:
    policy = DoorOpenPolicy(rise_c=3.0, grace_s=600.0) if door else None
    events = evaluate(
        cold_chain_rules(single_event_s=900, cumulative_s=3600, gap_s=gap, door=policy), readings
    )
    for rule in {e.rule for e in events if e.state != "info"}:
        states = [e.state for e in events if e.rule == rule]
        assert states[0] == "raised"
        assert all(a != b for a, b in itertools.pairwise(states))
    assert [e.state for e in events if e.kind == "cumulative"] in ([], ["raised"])


@settings(max_examples=200, deadline=None)
@given(readings=reading_series(), split=st.integers(0, 60), door=st.booleans())
def test_resuming_from_a_json_snapshot_gives_the_same_events(
    readings: list[tuple[float, float]], split: int, door: bool
) -> None:
    policy = DoorOpenPolicy(rise_c=3.0, grace_s=600.0) if door else None
    config = cold_chain_rules(single_event_s=900, cumulative_s=3600, gap_s=1200.0, door=policy)
    whole = evaluate(config, readings)
    first = ExcursionEvaluator(config)
    events = [e for t, v in readings[:split] for e in first.feed(t, v)]
    resumed = ExcursionEvaluator.restore(config, json.loads(json.dumps(first.snapshot())))
    events += [e for t, v in readings[split:] for e in resumed.feed(t, v)]
    assert events == whole


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(st.integers(1, 900), min_size=1, max_size=50),
    value=st.floats(min_value=2.5, max_value=7.5),
)
def test_readings_inside_the_limits_raise_nothing(steps: list[int], value: float) -> None:
    readings = [(float(sum(steps[: i + 1])), value) for i in range(len(steps))]
    assert evaluate(cold_chain_rules(gap_s=900.0, door=DoorOpenPolicy(rise_c=1.0)), readings) == []
