"""Sensor reading quality flags: source timestamps kept, out-of-range and stale values flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from edge.quality import PLAUSIBLE, flag_reading, quality_flags
from shelfsense.contract import Batch, SensorReading, SequencedEvent
from shelfsense.vocabulary import QUANTITY_UNITS

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
UNITS = QUANTITY_UNITS


def reading(value: float, age_s: float = 0.0, quantity: str = "temperature") -> SensorReading:
    return SensorReading.model_validate(
        {
            "sensor_id": "probe-1",
            "quantity": quantity,
            "value": value,
            "unit": UNITS[quantity],
            "time": NOW - timedelta(seconds=age_s),
        }
    )


def test_a_good_reading_is_returned_unchanged_with_its_source_time() -> None:
    r = reading(4.2, age_s=30)
    assert flag_reading(r, NOW, 900) is r
    assert r.time == NOW - timedelta(seconds=30)


def test_impossible_values_are_flagged_out_of_range() -> None:
    assert quality_flags(reading(-127.0), NOW, 900) == ("out_of_range",)  # DS18B20 "no probe"
    assert quality_flags(reading(104.0, quantity="humidity"), NOW, 900) == ("out_of_range",)
    assert quality_flags(reading(100.0, quantity="humidity"), NOW, 900) == ()


def test_old_source_time_is_flagged_stale_and_flags_survive_the_contract() -> None:
    r = flag_reading(reading(-127.0, age_s=3600), NOW, 900)
    assert r.flags == ("out_of_range", "stale")
    assert r.time == NOW - timedelta(hours=1)  # kept, not replaced by the receive time
    # The flags travel to the cloud: they are part of the sync contract.
    batch = Batch(edge_id="edge-1", created_at=NOW, events=[SequencedEvent(seq=1, event=r)])
    [back] = Batch.model_validate_json(batch.model_dump_json()).events
    assert isinstance(back.event, SensorReading) and back.event.flags == ("out_of_range", "stale")


def test_existing_flags_are_not_duplicated() -> None:
    r = reading(200.0).model_copy(update={"flags": ("clock_skew", "out_of_range")})
    assert flag_reading(r, NOW, 900).flags == ("clock_skew", "out_of_range")


@given(
    quantity=st.sampled_from(sorted(PLAUSIBLE)),
    value=st.floats(-1e4, 1e4, allow_nan=False),
    age=st.floats(-10, 1e5),
)
def test_flags_match_the_ranges(quantity: str, value: float, age: float) -> None:
    low, high = PLAUSIBLE[quantity]
    flags = quality_flags(reading(value, age, quantity), NOW, 900)
    assert ("out_of_range" in flags) == (not low <= value <= high)
    assert ("stale" in flags) == (timedelta(seconds=age).total_seconds() > 900)  # microsecond time
