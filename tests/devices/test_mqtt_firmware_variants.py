"""Firmware variants seen in the field: older Tasmota, legacy Zigbee2MQTT, Tasmota BLE, Shelly Gen1.

Sources of the payload shapes:
* Tasmota docs, "JSON Status Responses" (tasmota.github.io/docs/JSON-Status-Responses/): firmware
  5.x/6.x ``StatusSNS`` with ``"Time": "2018.02.15 01:00:50"`` (dotted date, space).
* Tasmota docs, "Bluetooth" / "Bluetooth Low Energy" (MI32 and HM-1x drivers): BLE sensors under
  ``tele/<topic>/SENSOR`` as ``"LYWSD03-52680f": {"mac":..,"Temperature":..,"Humidity":..,
  "DewPoint":..,"Battery":..,"RSSI":..}``.
* Zigbee2MQTT legacy converters (zigbee-herdsman-converters before numbers were normalised) and
  the 1.x ``legacy`` API: ``"battery": "37.00"``.
* Shelly Gen1 API docs (shelly-api-docs.shelly.cloud/gen1): Shelly H&T ``shellies/shellyht-<id>/
  sensor/temperature|humidity|battery`` and Shelly 1 add-on ``shellies/<id>/ext_temperature/<n>``,
  each a plain number.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import DecodeError
from devices.mqtt_formats import decode_payload
from shelfsense.cli_decode import infer_format


def _by_quantity(out: list) -> dict[str, float]:  # type: ignore[type-arg]
    return {m.quantity: m.value for m in out}


def test_tasmota_dotted_time_in_status_sns() -> None:
    payload = (
        b'{"StatusSNS":{"Time":"2018.02.15 01:00:50","AM2301":{"Temperature":4.2,"Humidity":61.0},'
        b'"TempUnit":"C"}}'
    )
    out = decode_payload("tasmota", "stat/fridge/STATUS10", payload)
    assert _by_quantity(out) == {"temperature": 4.2, "humidity": 61.0}
    assert {m.time for m in out} == {None}  # 2018: a clock before 2020 means receipt time
    later = payload.replace(b"2018.02.15", b"2021.03.04")
    assert {m.time for m in decode_payload("tasmota", "stat/fridge/STATUS10", later)} == {
        datetime(2021, 3, 4, 1, 0, 50, tzinfo=UTC)
    }


def test_zigbee2mqtt_legacy_numbers_as_strings() -> None:
    payload = b'{"battery":"37.00","temperature":"4.25","humidity":"61","linkquality":"120","voltage":"2975"}'
    out = decode_payload("zigbee2mqtt", "zigbee2mqtt/fridge", payload)
    assert _by_quantity(out) == {"battery": 37.0, "temperature": 4.25, "humidity": 61.0, "linkquality": 120.0}
    with pytest.raises(DecodeError, match="not finite"):  # float("NaN") parses: still refused
        decode_payload("zigbee2mqtt", "zigbee2mqtt/fridge", b'{"battery":"NaN"}')
    with pytest.raises(DecodeError, match="is not a number"):
        decode_payload("zigbee2mqtt", "zigbee2mqtt/fridge", b'{"battery":"full"}')


def test_tasmota_ble_sensors_battery() -> None:
    payload = (
        b'{"Time":"2023-05-01T10:00:00","LYWSD03-52680f":{"mac":"a4c13852680f","Temperature":3.9,'
        b'"Humidity":72.1,"DewPoint":-0.8,"Battery":88,"RSSI":-71},"LYWSD02-0a1b2c":{"mac":"3f59c80a1b2c",'
        b'"Temperature":5.1,"Humidity":60.0,"Battery":100,"RSSI":-80},"TempUnit":"C"}'
    )
    out = decode_payload("tasmota", "tele/ble-bridge/SENSOR", payload)
    batteries = {m.channel: m.value for m in out if m.quantity == "battery"}
    assert batteries == {"LYWSD03-52680f": 88.0, "LYWSD02-0a1b2c": 100.0}
    assert all(m.unit == "%" for m in out if m.quantity == "battery")
    assert len(out) == 6


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("shellies/shellyht-6FE1B0/sensor/temperature", b"4.50", ("temperature", 4.5, "degC", None)),
        ("shellies/shellyht-6FE1B0/sensor/humidity", b"61.5", ("humidity", 61.5, "%RH", None)),
        ("shellies/shellyht-6FE1B0/sensor/battery", b"98", ("battery", 98.0, "%", None)),
        ("shellies/shelly1-34945470/ext_temperature/1", b"-18.25", ("temperature", -18.25, "degC", "1")),
        ("shellies/shelly1-34945470/ext_humidity/0", b"55", ("humidity", 55.0, "%RH", "0")),
    ],
)
def test_shelly_gen1_topics(topic: str, payload: bytes, expected: tuple[str, float, str, str | None]) -> None:
    (m,) = decode_payload("shelly", topic, payload)
    assert (m.quantity, m.value, m.unit, m.channel) == expected
    assert m.time is None
    assert infer_format(topic)[0] == "shelly"


@pytest.mark.parametrize(
    "topic", ["shellies/shellyht-6FE1B0/online", "shellies/shellyht-6FE1B0/sensor/error", "shellies/announce"]
)
def test_shelly_gen1_topics_without_values(topic: str) -> None:
    assert decode_payload("shelly", topic, b"1") == []


def test_shelly_gen1_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not a number"):
        decode_payload("shelly", "shellies/shellyht-6FE1B0/sensor/temperature", b"hot")
    with pytest.raises(DecodeError, match="plausible"):
        decode_payload("shelly", "shellies/shellyht-6FE1B0/sensor/humidity", b"130")


# One rule for every format: a device time before 2020 is replaced by the receipt time (None).
_EARLY = [
    ("tasmota", "tele/fridge/SENSOR", {"Time": "1970-01-01T00:00:12", "AM2301": {"Temperature": 4.0}}),
    ("tasmota", "tele/fridge/SENSOR", {"Time": "1970.01.01 00:00:12", "AM2301": {"Temperature": 4.0}}),
    ("zigbee2mqtt", "zigbee2mqtt/fridge", {"temperature": 4.0, "last_seen": 12000}),
    ("zigbee2mqtt", "zigbee2mqtt/fridge", {"temperature": 4.0, "last_seen": "2019-12-31T23:59:59Z"}),
    (
        "shelly",
        "shellyplusht-1/events/rpc",
        {"method": "NotifyStatus", "params": {"ts": 12.5, "temperature:0": {"id": 0, "tC": 4.0}}},
    ),
    (
        "shelfsense",
        "shelfsense/site-1/sensors/probe-1",
        {
            "v": 1,
            "readings": [
                {"quantity": "temperature", "value": 4.0, "unit": "degC", "time": "1970-01-01T00:00:00Z"}
            ],
        },
    ),
]


@pytest.mark.parametrize(("fmt", "topic", "data"), _EARLY)
def test_device_times_before_2020_mean_receipt_time_in_every_format(
    fmt: str, topic: str, data: object
) -> None:
    out = decode_payload(fmt, topic, json.dumps(data).encode())
    assert [(m.quantity, m.value, m.time) for m in out] == [("temperature", 4.0, None)]


@pytest.mark.parametrize(
    ("fmt", "topic", "payload", "kept", "rejected"),
    [
        (
            "tasmota",
            "tele/x/SENSOR",
            b'{"AM2301":{"Temperature":4,"Humidity":130},"DS18B20":{"Temperature":5}}',
            2,
            1,
        ),
        ("zigbee2mqtt", "zigbee2mqtt/x", b'{"temperature":4,"humidity":101,"battery":true}', 1, 2),
        ("zigbee2mqtt", "zigbee2mqtt/x", b'{"temperature":4,"last_seen":"yesterday"}', 1, 1),
        (
            "shelly",
            "shellyplusht-1/events/rpc",
            b'{"method":"NotifyStatus","params":{"temperature:0":{"id":0,"tC":null,"errors":["read"]},'
            b'"humidity:0":{"id":0,"rh":55.2}}}',
            1,
            1,
        ),
        (
            "shelfsense",
            "shelfsense/s/sensors/p",
            b'{"v":1,"readings":[{"quantity":"temperature","value":4,"unit":"degC"},'
            b'{"quantity":"humidity","value":55,"unit":"%"}]}',
            1,
            1,
        ),
    ],
)
def test_partly_understood_payload_yields_what_it_can_and_counts_the_rest(
    fmt: str, topic: str, payload: bytes, kept: int, rejected: int
) -> None:
    out = decode_payload(fmt, topic, payload)
    assert len(out) == kept
    assert len(getattr(out, "rejected", [])) == rejected


good = st.floats(-20, 40, allow_nan=False)
bad = st.one_of(st.floats(200, 1e6), st.booleans(), st.text(alphabet="abc", min_size=1, max_size=3))


@given(
    st.dictionaries(st.sampled_from(["temperature", "humidity", "battery"]), st.one_of(good, bad), min_size=1)
)
def test_zigbee2mqtt_counts_every_value_once(data: dict[str, object]) -> None:
    def plausible(key: str, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, float):
            return False
        return 0 <= value <= 100 if key in ("humidity", "battery") else -60 <= value <= 130

    payload = json.dumps(data).encode()
    good_keys = {k for k, v in data.items() if plausible(k, v)}
    try:
        out = decode_payload("zigbee2mqtt", "zigbee2mqtt/x", payload)
    except DecodeError:
        assert not good_keys
        return
    assert {m.quantity for m in out} == good_keys
    assert len(out) + len(getattr(out, "rejected", [])) == len(data)
