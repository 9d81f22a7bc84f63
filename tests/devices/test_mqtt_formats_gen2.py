"""Shelly Gen2, ESPHome, Ruuvi Gateway and ShelfSense's own MQTT payloads, firmware-shaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import ruuvi
from devices.errors import DecodeError
from devices.mqtt_formats import (
    encode_esphome_state,
    encode_ruuvi_gateway,
    encode_shelfsense,
    encode_shelly_notify_status,
    encode_shelly_temperature_status,
    esphome_quantity,
    ruuvi_battery_percent,
    shelfsense_topic,
)
from devices.mqtt_registry import decode_payload, format_names
from devices.readings import Measurement
from shelfsense.vocabulary import PLAUSIBLE

SHELLY = "shellyhtg3-84fce63ad204"
TS = 1716371426.35
AT = datetime.fromtimestamp(TS, tz=UTC)

# A Shelly H&T Gen3 waking up (trimmed of sys/wifi noise only in length, not in shape).
HT_FULL_STATUS = json.dumps(
    {
        "src": SHELLY,
        "dst": f"{SHELLY}/events",
        "method": "NotifyFullStatus",
        "params": {
            "ts": TS,
            "ble": {},
            "cloud": {"connected": False},
            "devicepower:0": {"id": 0, "battery": {"V": 5.45, "percent": 79}, "external": {"present": False}},
            "ht_ui": {},
            "humidity:0": {"id": 0, "rh": 56.2},
            "mqtt": {"connected": True},
            "sys": {"mac": "84FCE63AD204", "uptime": 1, "wakeup_reason": {"boot": "deepsleep_wake"}},
            "temperature:0": {"id": 0, "tC": 22.9, "tF": 73.3},
            "wifi": {"sta_ip": "192.168.1.50", "status": "got ip", "rssi": -55},
        },
    }
).encode()


def test_shelly_full_status_on_wake_up() -> None:
    got = decode_payload("shelly", f"{SHELLY}/events/rpc", HT_FULL_STATUS)
    assert got == [
        Measurement("battery", 79.0, "%", AT, "0"),
        Measurement("humidity", 56.2, "%RH", AT, "0"),
        Measurement("temperature", 22.9, "degC", AT, "0"),
    ]


def test_shelly_notify_status_and_status_topic() -> None:
    payload = (
        b'{"src":"shellyplusht-c049ef8b3a44","dst":"shellyplusht-c049ef8b3a44/events",'
        b'"method":"NotifyStatus","params":{"ts":1680000000.58,"temperature:0":{"id":0,"tC":-18.4,"tF":-1.1}}}'
    )
    (m,) = decode_payload("shelly", "shellyplusht-c049ef8b3a44/events/rpc", payload)
    assert (m.quantity, m.value, m.time) == ("temperature", -18.4, datetime.fromtimestamp(1680000000.58, UTC))
    (m,) = decode_payload("shelly", "shelly1/status/temperature:0", b'{"id":0,"tC":4.1,"tF":39.4}')
    assert m == Measurement("temperature", 4.1, "degC", None, "0")
    (m,) = decode_payload("shelly", "shelly1/status/humidity:0", b'{"id":0,"rh":61.0}')
    assert m == Measurement("humidity", 61.0, "%RH", None, "0")
    # Only Fahrenheit given (some scripts publish it this way): converted.
    (m,) = decode_payload("shelly", "shelly1/status/temperature:0", b'{"id":0,"tF":39.2}')
    assert m.value == pytest.approx(4.0)


def test_shelly_addon_probes_are_channels_and_unconnected_probe_is_skipped() -> None:
    payload = json.dumps(
        {
            "src": "shellyplus1-a8032ab12345",
            "method": "NotifyStatus",
            "params": {
                "ts": TS,
                "temperature:100": {"id": 100, "tC": 3.5, "tF": 38.3},
                "temperature:101": {"id": 101, "tC": None, "tF": None},
            },
        }
    ).encode()
    (m,) = decode_payload("shelly", "shellyplus1-a8032ab12345/events/rpc", payload)
    assert (m.channel, m.value) == ("100", 3.5)


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (f"{SHELLY}/online", b"true"),
        (f"{SHELLY}/events/rpc", b'{"src":"x","method":"NotifyEvent","params":{"ts":1,"events":[]}}'),
        (f"{SHELLY}/status/sys", b'{"mac":"84FCE63AD204"}'),
        (f"{SHELLY}/rpc", b'{"id":1,"method":"Shelly.GetStatus"}'),
    ],
)
def test_shelly_topics_without_values(topic: str, payload: bytes) -> None:
    assert decode_payload("shelly", topic, payload) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"method":"NotifyStatus"}', "params"),
        (b'{"method":"NotifyStatus","params":{"temperature:0":5}}', "must be an object"),
        (b'{"method":"NotifyStatus","params":{"temperature:0":{"id":0,"tC":300}}}', "plausible"),
        (
            b'{"method":"NotifyStatus","params":{"temperature:100":{"id":100,"tC":null,"errors":["read"]}}}',
            "errors",
        ),
        (b'{"method":"NotifyStatus","params":{"humidity:0":{"id":0,"rh":"wet"}}}', "expected a number"),
        (b'{"method":"NotifyStatus","params":{"temperature:0":{"id":0,"tF":true}}}', "expected a number"),
    ],
)
def test_shelly_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_payload("shelly", f"{SHELLY}/events/rpc", payload)


def test_shelly_unsynced_clock_means_receipt_time() -> None:
    payload = encode_shelly_notify_status("s", temperature=4.0, ts=12.5)  # seconds since boot
    (m,) = decode_payload("shelly", "s/events/rpc", payload)
    assert m.time is None


@given(
    temperature=st.floats(-40, 100).map(lambda x: round(x, 1)),
    humidity=st.floats(0, 100).map(lambda x: round(x, 1)),
    battery=st.integers(0, 100),
)
def test_shelly_round_trip(temperature: float, humidity: float, battery: int) -> None:
    payload = encode_shelly_notify_status(
        "dev", temperature=temperature, humidity=humidity, battery=battery, ts=TS
    )
    got = {m.quantity: m.value for m in decode_payload("shelly", "dev/events/rpc", payload)}
    assert got == {"temperature": temperature, "humidity": humidity, "battery": battery}
    (m,) = decode_payload("shelly", "dev/status/temperature:0", encode_shelly_temperature_status(temperature))
    assert m.value == temperature


# ------------------------------------------------------------------------------------ ESPHome


def test_esphome_state_with_quantity_from_the_sensor_map() -> None:
    topic = "coldroom-esp/sensor/probe_a/state"
    assert decode_payload("esphome", topic, b"4.3", quantity="temperature") == [
        Measurement("temperature", 4.3, "degC")
    ]
    assert decode_payload("esphome", topic, b"61.25", quantity="humidity") == [
        Measurement("humidity", 61.25, "%RH")
    ]
    with pytest.raises(DecodeError, match="set `quantity`"):
        decode_payload("esphome", topic, b"4.3")


def test_esphome_quantity_from_object_id_and_custom_prefix() -> None:
    assert esphome_quantity("site/b/esp1/sensor/cold_room_temperature/state") == "temperature"
    assert esphome_quantity("esp1/sensor/temp_or_humidity/state") is None  # ambiguous
    (m,) = decode_payload("esphome", "site/b/esp1/sensor/cold_room_humidity/state", b"70.0")
    assert (m.quantity, m.value) == ("humidity", 70.0)


@pytest.mark.parametrize(
    "payload", [b"nan", b"NaN", b"inf", b"", b"warm", b"\xff\xfe", b"1" * 100, b"-300.0"]
)
def test_esphome_bad_states(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_payload("esphome", "esp/sensor/t/state", payload, quantity="temperature")


@pytest.mark.parametrize(
    "topic", ["esp/status", "esp/binary_sensor/door/state", "esp/sensor/t/command", "esp/debug"]
)
def test_esphome_other_topics(topic: str) -> None:
    assert decode_payload("esphome", topic, b"online", quantity="temperature") == []


@given(st.floats(*PLAUSIBLE["temperature"]), st.integers(0, 4))
def test_esphome_round_trip(value: float, decimals: int) -> None:
    (m,) = decode_payload(
        "esphome", "n/sensor/x/state", encode_esphome_state(value, decimals), quantity="temperature"
    )
    assert m.value == pytest.approx(value, abs=0.5 * 10**-decimals + 1e-9)


# ------------------------------------------------------------------------------------ Ruuvi Gateway

RUUVI_TOPIC = "ruuvi/C8:25:2D:8E:9C:2C/CB:B8:33:4C:88:4F"
# As Ruuvi Gateway firmware 1.x publishes it (timestamps as strings).
RUUVI_MESSAGE = (
    b'{"gw_mac":"C8:25:2D:8E:9C:2C","rssi":-62,"aoa":[],"gwts":"1659870523","ts":"1659870522",'
    b'"data":"0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F","coords":""}'
)


def test_ruuvi_gateway_message_format_5() -> None:
    at = datetime.fromtimestamp(1659870522, UTC)
    assert decode_payload("ruuvi", RUUVI_TOPIC, RUUVI_MESSAGE) == [
        Measurement("temperature", 24.3, "degC", at),
        Measurement("humidity", 53.49, "%RH", at),
        Measurement("pressure", 1000.44, "hPa", at),
        Measurement("battery", 95.0, "%", at),  # 2977 mV: (2977 - 2500) / 500
    ]


def test_ruuvi_invalid_markers_mean_absent_values() -> None:
    adv = ruuvi.advertisement(bytes.fromhex("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF"))
    assert decode_payload("ruuvi", RUUVI_TOPIC, encode_ruuvi_gateway("C8:25:2D:8E:9C:2C", adv)) == []
    # Only humidity broken: temperature, pressure and battery still come through.
    adv = ruuvi.advertisement(ruuvi.encode_df5(3.2, None, 101325, battery_mv=2900))
    got = {m.quantity: m.value for m in decode_payload("ruuvi", RUUVI_TOPIC, encode_ruuvi_gateway("gw", adv))}
    assert got == {"temperature": 3.2, "pressure": 1013.25, "battery": 80.0}


def test_ruuvi_maximum_vector_is_implausible_but_its_battery_is_kept() -> None:
    adv = ruuvi.advertisement(bytes.fromhex("057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F"))
    out = decode_payload("ruuvi", RUUVI_TOPIC, encode_ruuvi_gateway("gw", adv, ts=1659870522))
    assert [m.quantity for m in out] == ["battery"]
    rejected = getattr(out, "rejected", [])
    assert len(rejected) == 3 and all("plausible" in reason for reason in rejected)


def test_ruuvi_battery_threshold_depends_on_temperature() -> None:
    assert ruuvi_battery_percent(2400, 4.0) == 0.0
    assert ruuvi_battery_percent(2400, -18.0) == pytest.approx(100 / 7, abs=0.5)
    assert ruuvi_battery_percent(3100, 20.0) == 100.0


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("ruuvi/C8:25:2D:8E:9C:2C/gw_status", b'{"state":"online"}'),
        (RUUVI_TOPIC, b'{"gw_mac":"x","data":"0201061AFF4C000215' + b"00" * 21 + b'"}'),  # an iBeacon
    ],
)
def test_ruuvi_without_tag_values(topic: str, payload: bytes) -> None:
    assert decode_payload("ruuvi", topic, payload) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"gw_mac":"x"}', "hex 'data'"),
        (b'{"data":"02010zz"}', "not hex"),
        (b'{"data":"0201061BFF99040512"}', "claims"),
        (b"[]", "JSON object"),
    ],
)
def test_ruuvi_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_payload("ruuvi", RUUVI_TOPIC, payload)


# ------------------------------------------------------------------------------------ ShelfSense

SS_TOPIC = shelfsense_topic("site-1", "probe-7")


def test_shelfsense_documented_example() -> None:
    payload = (
        b'{"v":1,"readings":[{"quantity":"temperature","value":4.1,"unit":"degC","time":"2026-11-25T10:00:00Z"},'
        b'{"quantity":"humidity","value":62.5,"unit":"%RH","time":"2026-11-25T11:00:00+01:00"}]}'
    )
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert decode_payload("shelfsense", SS_TOPIC, payload) == [
        Measurement("temperature", 4.1, "degC", at),
        Measurement("humidity", 62.5, "%RH", at),
    ]
    assert decode_payload("shelfsense", "shelfsense/site-1/alarms/cold-room", b"{}") == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"v":2,"readings":[]}', "version 2"),
        (b'{"readings":[]}', "version None"),
        (b'{"v":1}', "must be a list"),
        (b'{"v":1,"readings":[1]}', "must be an object"),
        (b'{"v":1,"readings":[{"quantity":"co2","value":400,"unit":"ppm"}]}', "quantity 'co2'"),
        (b'{"v":1,"readings":[{"quantity":"temperature","value":39,"unit":"degF"}]}', "must be 'degC'"),
        (
            b'{"v":1,"readings":[{"quantity":"temperature","value":4,"unit":"degC","time":"2026-11-25T10:00"}]}',
            "offset",
        ),
        (
            b'{"v":1,"readings":[{"quantity":"temperature","value":4,"unit":"degC","time":"noon"}]}',
            "unreadable",
        ),
        (
            b'{"v":1,"readings":[{"quantity":"temperature","value":4,"unit":"degC","channel":"a b"}]}',
            "channel",
        ),
        (b'{"v":1,"readings":[{"quantity":"humidity","value":120,"unit":"%RH"}]}', "plausible"),
        (
            b'{"v":1,"readings":['
            + b",".join([b'{"quantity":"humidity","value":1,"unit":"%RH"}'] * 101)
            + b"]}",
            "exceed",
        ),
    ],
)
def test_shelfsense_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_payload("shelfsense", SS_TOPIC, payload)


_measurements = st.builds(
    Measurement,
    quantity=st.just("temperature"),
    value=st.floats(*PLAUSIBLE["temperature"]),
    unit=st.just("degC"),
    time=st.none() | st.datetimes(min_value=datetime(2020, 1, 1), timezones=st.just(UTC)),
    channel=st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,10}", fullmatch=True),
) | st.builds(
    Measurement,
    quantity=st.just("battery"),
    value=st.floats(0, 100),
    unit=st.just("%"),
    time=st.none(),
    channel=st.none(),
)


@given(st.lists(_measurements, max_size=20))
def test_shelfsense_round_trip(measurements: list[Measurement]) -> None:
    assert decode_payload("shelfsense", SS_TOPIC, encode_shelfsense(measurements)) == measurements


# ------------------------------------------------------------------------------------ all formats

TOPICS = {
    "zigbee2mqtt": "zigbee2mqtt/x",
    "tasmota": "tele/x/SENSOR",
    "shelly": "x/events/rpc",
    "esphome": "x/sensor/temperature/state",
    "ruuvi": RUUVI_TOPIC,
    "shelfsense": SS_TOPIC,
}


@pytest.mark.parametrize("fmt", format_names())
@given(payload=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_payloads_only_ever_raise_decode_error(fmt: str, payload: bytes) -> None:
    try:
        result = decode_payload(fmt, TOPICS[fmt], payload)
    except DecodeError:
        return
    assert all(isinstance(m, Measurement) for m in result)


@pytest.mark.parametrize("fmt", ["shelly", "ruuvi", "shelfsense"])
@given(data=st.data())
def test_mutated_json_payloads_only_ever_raise_decode_error(fmt: str, data: st.DataObject) -> None:
    good = {
        "shelly": HT_FULL_STATUS,
        "ruuvi": RUUVI_MESSAGE,
        "shelfsense": encode_shelfsense([Measurement("temperature", 4.0, "degC", AT)]),
    }[fmt]
    index = data.draw(st.integers(0, len(good) - 1))
    mutated = good[:index] + data.draw(st.binary(min_size=1, max_size=3)) + good[index + 1 :]
    try:
        result = decode_payload(fmt, TOPICS[fmt], mutated)
    except DecodeError:
        return
    assert all(isinstance(m, Measurement) for m in result)


def test_every_documented_format_is_a_config_choice() -> None:
    from pydantic import ValidationError

    from shelfsense.config import MqttSensorConfig

    for fmt in TOPICS:
        assert MqttSensorConfig(topic=TOPICS[fmt], format=fmt, sensor_id="s").format == fmt
    expected = r"Input should be 'zigbee2mqtt', 'tasmota', .* or 'shelfsense'"
    with pytest.raises(ValidationError, match=expected):
        MqttSensorConfig(topic="x", format="lorawan", sensor_id="s")
