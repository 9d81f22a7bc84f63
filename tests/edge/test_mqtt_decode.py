"""The MQTT transport's per-message decode never raises, whatever the topic and payload (issue 12).

In-process and fast, so hypothesis can try thousands of payloads per format; the running-edge
version with a real broker is tests/edge/test_receive_fuzz.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from serial_helpers import CLOCK, durable

from devices.mqtt_packets import OversizedPublish, Publish
from devices.mqtt_registry import format_names
from edge.rejects import Rejects
from edge.supervisor import DeviceHealthState
from edge.transports.mqtt import MqttTransport
from shelfsense.config import MqttConfig, MqttSensorConfig
from shelfsense.contract import SensorReading

TOPICS = {
    "zigbee2mqtt": "zigbee2mqtt/f",
    "tasmota": "tele/f/SENSOR",
    "shelly": "f/events/rpc",
    "esphome": "esp/sensor/f_temperature/state",
    "ruuvi": "ruuvi/C8:25:2D:8E:9C:2C/C8:25:2D:8E:9C:2D",
    "shelfsense": "shelfsense/site-1/sensors/f",
}


def _transport() -> MqttTransport:
    sensors = [
        MqttSensorConfig(topic=topic, format=fmt, sensor_id=f"s-{fmt}") for fmt, topic in TOPICS.items()
    ]
    assert set(TOPICS) == set(format_names())
    return MqttTransport(
        MqttConfig(sensors=sensors), "edge-1", DeviceHealthState("mqtt"), durable(_no_sink), clock=CLOCK
    )


async def _no_sink(*_: object, **__: object) -> None:
    await asyncio.sleep(0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["2026-01-01T00:00:00", "9999-12-31T23:59:59+14:00", "0001-01-01", "nan"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
KEYS = ["temperature", "humidity", "battery", "last_seen", "Time", "TempUnit", "AM2301", "DS18B20-1",
        "Temperature", "Id", "params", "method", "temperature:0", "tC", "rh", "data", "ts", "v", "readings",
        "quantity", "value", "unit", "time", "channel", "a b"]  # fmt: skip
objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)


def _payload(draw_obj: object) -> bytes:
    try:
        return json.dumps(draw_obj).encode()
    except ValueError:  # a 5,000-digit integer: json.dumps refuses too, write it by hand
        return b'{"temperature": ' + b"9" * 5000 + b"}"


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(TOPICS)), objects | st.binary(max_size=200), st.booleans())
def test_decode_never_raises(fmt: str, content: object, oversized: bool) -> None:
    transport = _transport()
    payload = content if isinstance(content, bytes) else _payload(content)
    msg = (
        OversizedPublish(TOPICS[fmt], payload, 1, 7, size=2 << 20)
        if oversized
        else Publish(TOPICS[fmt], payload, 1, 7)
    )
    rejects = Rejects()
    readings = transport.intake.decode(msg, datetime.now(UTC), rejects)
    if readings is None:
        assert len(rejects.items) == 1 and rejects.items[0].topic == TOPICS[fmt]
        assert rejects.items[0].payload == payload[:4096]
    else:
        assert not rejects.items
        assert all(isinstance(r, SensorReading) for r in readings)
