"""Local alarm evaluation: raise once, clear with hysteresis, restore after restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.alarms import AlarmEvaluator, alarm_payload, alarm_topic
from shelfsense.config import ZoneLimits
from shelfsense.contract import LocalAlarm, SensorReading

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ZONE = ZoneLimits(id="cold-room", min_temp_c=2.0, max_temp_c=8.0, max_humidity=90.0, hysteresis_c=0.5)


def temp(
    value: float, n: int = 0, zone: str | None = "cold-room", quantity: str = "temperature"
) -> SensorReading:
    unit = "degC" if quantity == "temperature" else "%RH"
    return SensorReading.model_validate(
        {
            "sensor_id": "probe-1",
            "quantity": quantity,
            "value": value,
            "unit": unit,
            "time": T0 + timedelta(minutes=n),
            "zone": zone,
        }
    )


def states(evaluator: AlarmEvaluator, values: list[float]) -> list[tuple[str, str, float]]:
    out: list[tuple[str, str, float]] = []
    for n, value in enumerate(values):
        out += [(a.rule, a.state, a.value) for a in evaluator.evaluate(temp(value, n))]
    return out


def test_max_temperature_raises_once_and_clears_with_hysteresis() -> None:
    evaluator = AlarmEvaluator([ZONE])
    assert states(evaluator, [5.0, 8.0, 8.1, 9.5, 8.3, 7.9, 7.6, 7.5, 7.0, 8.2]) == [
        ("max_temperature", "raised", 8.1),
        ("max_temperature", "cleared", 7.5),  # 7.9 and 7.6 are inside the 0.5 band: no flapping
        ("max_temperature", "raised", 8.2),
    ]


def test_min_temperature_and_humidity() -> None:
    evaluator = AlarmEvaluator([ZONE])
    assert states(evaluator, [1.9, 2.4, 2.5]) == [
        ("min_temperature", "raised", 1.9),
        ("min_temperature", "cleared", 2.5),
    ]
    alarms = evaluator.evaluate(temp(95.0, quantity="humidity"))
    assert [(a.rule, a.limit) for a in alarms] == [("max_humidity", 90.0)]


def test_unknown_zone_or_no_zone_never_alarms() -> None:
    evaluator = AlarmEvaluator([ZONE])
    assert evaluator.evaluate(temp(30.0, zone=None)) == []
    assert evaluator.evaluate(temp(30.0, zone="freezer")) == []


def test_restored_open_alarm_is_not_raised_again_but_can_clear() -> None:
    evaluator = AlarmEvaluator([ZONE], open_alarms=[("cold-room", "probe-1", "max_temperature")])
    assert states(evaluator, [9.0, 7.0]) == [("max_temperature", "cleared", 7.0)]


def test_topic_and_payload() -> None:
    alarm = LocalAlarm(
        zone="cold-room", sensor_id="p", rule="max_temperature", state="raised", value=9.0, limit=8.0, at=T0
    )
    assert alarm_topic("site-1", "cold-room") == "shelfsense/site-1/alarms/cold-room"
    assert LocalAlarm.model_validate_json(alarm_payload(alarm)) == alarm
