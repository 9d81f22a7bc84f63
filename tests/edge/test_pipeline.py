"""The edge pipeline's pure stages in their order: quality flags first, then alarms on what is
plausible (a dead probe's -127 degC is flagged and raises nothing; a real excursion raises once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.alarms import AlarmEvaluator
from edge.pipeline import Pipeline
from shelfsense.config import ZoneLimits
from shelfsense.contract import SensorReading

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _reading(value: float, age_s: float = 0.0) -> SensorReading:
    return SensorReading(
        sensor_id="probe-1",
        quantity="temperature",
        value=value,
        unit="degC",
        time=NOW - timedelta(seconds=age_s),
        zone="cold",
    )


def test_quality_runs_before_alarms_and_alarms_follow_their_readings() -> None:
    pipeline = Pipeline(AlarmEvaluator([ZoneLimits(id="cold", min_temp_c=2.0)]), 900, lambda: 5.0)
    dead_probe = pipeline.prepare([_reading(-127.0)], NOW)
    assert dead_probe.events[0].flags == ("out_of_range",)  # type: ignore[union-attr]
    assert dead_probe.alarms == []  # flagged by quality, so no excursion

    cold = pipeline.prepare([_reading(1.0, age_s=1800)], NOW)
    assert cold.events[0].flags == ("stale",)  # type: ignore[union-attr]
    assert [(a.rule, a.state, a.value) for a in cold.alarms] == [("min_temperature", "raised", 1.0)]
    assert cold.batch() == [*cold.events, *cold.alarms]  # the alarm commits with its reading
    assert pipeline.prepare([_reading(1.5)], NOW).alarms == []  # raised once


def test_a_reading_from_a_clock_ahead_is_flagged_with_the_current_tolerance() -> None:
    tolerance = [60.0]
    pipeline = Pipeline(AlarmEvaluator([]), 900, lambda: tolerance[0])
    ahead = _reading(4.0, age_s=-30)
    assert pipeline.prepare([ahead], NOW).events[0].flags == ()  # type: ignore[union-attr]
    tolerance[0] = 10.0
    assert pipeline.prepare([ahead], NOW).events[0].flags == ("clock_skew",)  # type: ignore[union-attr]
