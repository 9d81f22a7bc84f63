"""One sensor vocabulary for every layer: the same quantities, units, plausible bounds and limit rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import DecodeError
from devices.modbus import HUMIDITY_RANGE, TEMP_RANGE_C
from devices.mqtt_formats import decode_zigbee2mqtt
from edge.alarms import AlarmEvaluator
from edge.quality import quality_flags
from shelfsense.config import ZoneLimits
from shelfsense.contract import LocalAlarm, SensorReading
from shelfsense.vocabulary import PLAUSIBLE, QUANTITIES, QUANTITY_UNITS, RULES, breached, cleared

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _reading(quantity: str, value: float) -> SensorReading:
    return SensorReading(
        sensor_id="s-1", quantity=quantity, value=value, unit=QUANTITY_UNITS[quantity], time=NOW
    )  # type: ignore[arg-type]


def _z2m_verdict(quantity: str, value: float) -> bool:
    """Whether the Zigbee2MQTT decoder keeps ``value`` (a flat payload as the converters publish it)."""
    try:
        decoded = decode_zigbee2mqtt("zigbee2mqtt/probe", json.dumps({quantity: value}).encode())
    except DecodeError:
        return False
    return [(m.quantity, m.value) for m in decoded] == [(quantity, value)]


def test_a_zigbee2mqtt_127_degc_is_implausible_for_the_decoder_and_for_the_quality_flags() -> None:
    # The example: the decoder used to accept 127 degC (bound 130) and quality flag it (125).
    assert not _z2m_verdict("temperature", 127.0)
    assert quality_flags(_reading("temperature", 127.0), NOW, 900) == ("out_of_range",)
    assert _z2m_verdict("temperature", 125.0)
    assert quality_flags(_reading("temperature", 125.0), NOW, 900) == ()


@given(
    quantity=st.sampled_from(sorted(PLAUSIBLE)),
    value=st.floats(min_value=-400, max_value=1500, allow_nan=False).map(lambda v: round(v, 1)),
)
def test_decoder_and_quality_agree_on_every_value(quantity: str, value: float) -> None:
    plausible = "out_of_range" not in quality_flags(_reading(quantity, value), NOW, 900)
    assert _z2m_verdict(quantity, value) is plausible


def test_contract_and_config_literals_are_the_vocabulary() -> None:
    assert set(get_args(SensorReading.model_fields["quantity"].annotation)) == set(QUANTITIES)
    assert set(get_args(SensorReading.model_fields["unit"].annotation)) == set(QUANTITY_UNITS.values())
    with pytest.raises(ValueError, match="quantity"):
        SensorReading(sensor_id="s", quantity="voltage", value=1, unit="%", time=NOW)  # type: ignore[arg-type]


def test_a_device_range_only_narrows_the_vocabulary() -> None:
    # XY-MD02 (SHT20) datasheet range: narrower than the plausible one, never wider.
    low, high = PLAUSIBLE["temperature"]
    assert low <= TEMP_RANGE_C[0] < TEMP_RANGE_C[1] <= high
    assert PLAUSIBLE["humidity"] == HUMIDITY_RANGE


def test_edge_alarms_raise_and_clear_with_the_vocabularys_hysteresis() -> None:
    zone = ZoneLimits(id="cold", max_temp_c=8.0, min_temp_c=2.0, hysteresis_c=0.5)
    evaluator = AlarmEvaluator([zone])
    states = []
    for value in (8.0, 8.1, 7.6, 7.5, 1.9, 2.4, 2.5):
        reading = _reading("temperature", value).model_copy(update={"zone": "cold"})
        states += [(a.rule, a.state) for a in evaluator.evaluate(reading)]
    assert states == [
        ("max_temperature", "raised"),  # 8.1 > 8.0; 8.0 itself is inside
        ("max_temperature", "cleared"),  # 7.5 = 8.0 - 0.5; 7.6 is still hovering
        ("min_temperature", "raised"),
        ("min_temperature", "cleared"),  # 2.5 = 2.0 + 0.5
    ]
    assert breached("max_humidity", 80.1, 80.0) and not breached("max_humidity", 80.0, 80.0)
    assert cleared("min_temperature_instant", 0.5, 0.0, 0.5)  # cloud variants follow the prefix
    assert set(get_args(LocalAlarm.model_fields["rule"].annotation)) == set(RULES)
