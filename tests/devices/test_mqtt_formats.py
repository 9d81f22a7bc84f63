"""Zigbee2MQTT and Tasmota payloads as the firmware publishes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import DecodeError
from devices.mqtt_formats import encode_tasmota, encode_zigbee2mqtt
from devices.mqtt_registry import decode_payload
from devices.readings import Measurement

Z2M_TOPIC = "zigbee2mqtt/coldroom_1"
TASMOTA_TOPIC = "tele/coldroom_2/SENSOR"


def test_zigbee2mqtt_aqara_payload() -> None:
    payload = b'{"temperature":4.2,"humidity":61.5,"battery":97,"linkquality":120,"voltage":3000}'
    assert decode_payload("zigbee2mqtt", Z2M_TOPIC, payload) == [
        Measurement("temperature", 4.2, "degC"),
        Measurement("humidity", 61.5, "%RH"),
        Measurement("battery", 97.0, "%"),
        Measurement("linkquality", 120.0, "lqi"),
    ]


def test_zigbee2mqtt_ignores_unknown_keys_nulls_and_reads_last_seen() -> None:
    payload = b'{"temperature":-18.25,"humidity":null,"state":"ON","last_seen":"2026-11-25T10:00:00+01:00"}'
    (m,) = decode_payload("zigbee2mqtt", Z2M_TOPIC, payload)
    assert m == Measurement("temperature", -18.25, "degC", datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    (m,) = decode_payload("zigbee2mqtt", Z2M_TOPIC, b'{"pressure":1013.2,"last_seen":1764061200000}')
    assert m.time == datetime(2025, 11, 25, 9, 0, tzinfo=UTC)
    assert decode_payload("zigbee2mqtt", Z2M_TOPIC, b'{"state":"ON"}') == []


@pytest.mark.parametrize(
    "topic", ["zigbee2mqtt/bridge/state", "zigbee2mqtt/coldroom_1/availability", "zigbee2mqtt/x/set"]
)
def test_zigbee2mqtt_non_measurement_topics_decode_to_nothing(topic: str) -> None:
    assert decode_payload("zigbee2mqtt", topic, b"online") == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"online"', "JSON object"),
        (b'{"temperature": NaN}', "NaN"),
        (b'{"temperature": Infinity}', "Infinity"),
        (b'{"temperature": 1e999}', "not finite"),
        (b'{"temperature": 250}', "plausible temperature"),
        (b'{"humidity": 101}', "plausible humidity"),
        (b'{"temperature": "warm"}', "is not a number"),
        (b'{"temperature": true}', "expected a number"),
        (b"[" * 100_000, "exceeds"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    ],
)
def test_zigbee2mqtt_malformed_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_payload("zigbee2mqtt", Z2M_TOPIC, payload)


def test_tasmota_am2301_in_fahrenheit() -> None:
    payload = (
        b'{"Time":"2026-11-25T10:00:00","AM2301":{"Temperature":39.2,"Humidity":61.0,"DewPoint":27.1},'
        b'"TempUnit":"F"}'
    )
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert decode_payload("tasmota", TASMOTA_TOPIC, payload) == [
        Measurement("temperature", 4.0, "degC", at, "AM2301"),
        Measurement("humidity", 61.0, "%RH", at, "AM2301"),
    ]


def test_tasmota_several_ds18b20_are_told_apart_by_id() -> None:
    payload = json.dumps(
        {
            "Time": "2026-11-25T10:00:00",
            "DS18B20-1": {"Id": "01131B8A4A70", "Temperature": 3.9},
            "DS18B20-2": {"Id": "0316A2794D2F", "Temperature": -19.5},
            "SHT3X": {"Temperature": 5.1, "Humidity": 70.2, "DewPoint": 0.1},
            "TempUnit": "C",
        }
    ).encode()
    out = decode_payload("tasmota", TASMOTA_TOPIC, payload)
    assert [(m.channel, m.quantity, m.value) for m in out] == [
        ("DS18B20:01131B8A4A70", "temperature", 3.9),
        ("DS18B20:0316A2794D2F", "temperature", -19.5),
        ("SHT3X", "temperature", 5.1),
        ("SHT3X", "humidity", 70.2),
    ]


def test_tasmota_status10_and_pressure_units() -> None:
    payload = (
        b'{"StatusSNS":{"Time":"2026-11-25T10:00:00","BME280":{"Temperature":21.0,"Humidity":40.0,'
        b'"Pressure":29.92},"PressureUnit":"inHg","TempUnit":"C"}}'
    )
    out = decode_payload("tasmota", "stat/coldroom_2/STATUS10", payload)
    assert [m.quantity for m in out] == ["temperature", "humidity", "pressure"]
    assert out[2].value == pytest.approx(1013.2, abs=0.1)


@pytest.mark.parametrize("topic", ["tele/coldroom_2/LWT", "tele/coldroom_2/STATE", "stat/coldroom_2/RESULT"])
def test_tasmota_non_sensor_topics_decode_to_nothing(topic: str) -> None:
    assert decode_payload("tasmota", topic, b"Online") == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"AM2301":{"Temperature":4},"TempUnit":"K"}', "TempUnit"),
        (b'{"AM2301":{"Temperature":4},"TempUnit":["F"]}', "TempUnit"),
        (b'{"BME280":{"Pressure":4},"PressureUnit":{}}', "PressureUnit"),
        (b'{"AM2301":{"Temperature":"hot"},"TempUnit":"F"}', "AM2301.Temperature: expected a number"),
        (b'{"AM2301":{"Temperature":400}}', "plausible temperature"),
        (b'{"AM2301":{"Humidity":-3}}', "plausible humidity"),
        (b"null", "JSON object"),
    ],
)
def test_tasmota_malformed_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_payload("tasmota", TASMOTA_TOPIC, payload)


def test_unknown_format_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="unsupported payload format 'homie'"):
        decode_payload("homie", "x", b"{}")


def test_tasmota_time_with_offset_and_aware_encoder_time() -> None:
    local = datetime(2026, 11, 25, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    payload = encode_tasmota(local, 4.0, 60.0)
    assert json.loads(payload)["Time"] == "2026-11-25T10:00:00"
    (t, _) = decode_payload("tasmota", TASMOTA_TOPIC, payload)
    assert t.time == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- properties

temperature_st = st.floats(-40, 80, allow_nan=False)
humidity_st = st.floats(0, 100, allow_nan=False)


@given(
    temperature_st,
    humidity_st,
    st.none() | st.integers(0, 100),
    st.none() | st.integers(0, 255),
)
def test_zigbee2mqtt_round_trip(t: float, h: float, battery: int | None, lqi: int | None) -> None:
    out = {
        m.quantity: m
        for m in decode_payload("zigbee2mqtt", Z2M_TOPIC, encode_zigbee2mqtt(t, h, battery, lqi))
    }
    assert out["temperature"].value == pytest.approx(t, abs=0.005)
    assert out["humidity"].value == pytest.approx(h, abs=0.005)
    assert ("battery" in out) == (battery is not None)
    assert ("linkquality" in out) == (lqi is not None)
    if battery is not None:
        assert out["battery"].value == battery


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1)),
    temperature_st,
    humidity_st,
    st.sampled_from(["AM2301", "DHT11", "SHT3X", "DS18B20", "DS18B20-2"]),
    st.sampled_from(["C", "F"]),
)
def test_tasmota_round_trip(time: datetime, t: float, h: float, sensor: str, unit: str) -> None:
    out = decode_payload("tasmota", TASMOTA_TOPIC, encode_tasmota(time, t, h, sensor, unit))
    values = {m.quantity: m for m in out}
    # Tasmota publishes one decimal (in degF when TempUnit is F): at most 0.05 degF = 0.028 degC off.
    assert values["temperature"].value == pytest.approx(t, abs=0.05 + 1e-6)
    assert values["temperature"].time == time.replace(microsecond=0, tzinfo=UTC)
    if sensor.startswith("DS18B20"):
        assert set(values) == {"temperature"}
        assert values["temperature"].channel is not None and values["temperature"].channel.startswith(
            "DS18B20:"
        )
    else:
        assert values["humidity"].value == pytest.approx(h, abs=0.05 + 1e-6)


json_st = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
sensor_keys = st.sampled_from(
    ["temperature", "humidity", "battery", "linkquality", "pressure", "last_seen", "Time", "TempUnit",
     "AM2301", "DS18B20-1", "Temperature", "Humidity", "Pressure", "PressureUnit", "StatusSNS", "Id"]
)  # fmt: skip
shaped_st = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=25),
    lambda children: st.dictionaries(sensor_keys, children, max_size=6),
    max_leaves=15,
)


@given(st.sampled_from(["zigbee2mqtt", "tasmota"]), st.one_of(json_st, shaped_st))
def test_any_json_decodes_or_raises_decode_error(fmt: str, value: object) -> None:
    payload = json.dumps(value).encode()  # may contain NaN/Infinity: those must be refused too
    topic = Z2M_TOPIC if fmt == "zigbee2mqtt" else TASMOTA_TOPIC
    try:
        out = decode_payload(fmt, topic, payload)
    except DecodeError as exc:
        assert str(exc)
        return
    for m in out:
        assert isinstance(m.value, float)
        assert m.value == m.value  # never NaN
        assert m.time is None or m.time.tzinfo is not None


@given(st.sampled_from(["zigbee2mqtt", "tasmota"]), st.binary(max_size=200))
def test_random_bytes_decode_or_raise_decode_error(fmt: str, payload: bytes) -> None:
    try:
        out = decode_payload(fmt, Z2M_TOPIC if fmt == "zigbee2mqtt" else TASMOTA_TOPIC, payload)
    except DecodeError:
        return
    assert isinstance(out, list)


@given(temperature_st, humidity_st, st.lists(st.tuples(st.integers(0, 500), st.integers(0, 255)), max_size=4))
def test_mutated_payloads_decode_or_raise_decode_error(
    t: float, h: float, mutations: list[tuple[int, int]]
) -> None:
    for fmt, topic, payload in (
        ("zigbee2mqtt", Z2M_TOPIC, encode_zigbee2mqtt(t, h, 90, 100)),
        ("tasmota", TASMOTA_TOPIC, encode_tasmota(datetime(2026, 1, 1), t, h, "SHT3X", "F")),
    ):
        data = bytearray(payload)
        for where, value in mutations:
            data[where % len(data)] = value
        try:
            out = decode_payload(fmt, topic, bytes(data))
        except DecodeError:
            assert mutations, "an unmutated payload must decode"
            continue
        if not mutations:
            assert out[0].value == pytest.approx(t, abs=0.05 + 1e-6)
