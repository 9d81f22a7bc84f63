"""A new MQTT firmware format is one registration: config, ``decode mqtt``, infer_format and the
simulator take it without any other edit."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devices import mqtt_registry
from devices.errors import DecodeError
from devices.mqtt_registry import MqttFormat, SimSample, decode_payload, infer_format, register_format
from devices.readings import Measurement
from shelfsense.cli_decode import cmd_decode_mqtt
from shelfsense.config import MqttSensorConfig
from simulators.mqtt_sensors import SimulatedMqttSensor

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _decode_toy(topic: str, payload: bytes, quantity: str | None) -> list[Measurement]:
    try:
        celsius = float(json.loads(payload)["t"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"toy payload: {exc}") from exc
    return [Measurement("temperature", celsius, "degC")]


TOY = MqttFormat(
    "toyfw",
    _decode_toy,
    topics=(r"^toy/(?P<sensor>[^/]+)/reading$",),
    encode=lambda s: json.dumps({"t": s.temperature}).encode(),
    sim_topic="toy/sim/reading",
)


@pytest.fixture
def toy_format() -> Iterator[MqttFormat]:
    register_format(TOY)
    yield TOY
    mqtt_registry._FORMATS.pop(TOY.name)  # leave the registry as the other tests expect it


def test_a_registered_format_is_usable_everywhere_without_other_edits(
    toy_format: MqttFormat, capsys: pytest.CaptureFixture[str]
) -> None:
    assert MqttSensorConfig(topic="toy/cold-1/reading", format="toyfw", sensor_id="cold-1").format == "toyfw"
    assert infer_format("toy/cold-1/reading") == ("toyfw", "cold-1")
    assert decode_payload("toyfw", "toy/cold-1/reading", b'{"t": 3.5}') == [
        Measurement("temperature", 3.5, "degC")
    ]
    sensor = SimulatedMqttSensor("toy/sim/reading", "toyfw", lambda: (4.25, 60.0))
    assert decode_payload("toyfw", sensor.topic, sensor.payload(NOW))[0].value == 4.25

    args = argparse.Namespace(
        topic="toy/cold-1/reading", payload='{"t": 2.0}', format=None, quantity=None, json=True
    )
    assert cmd_decode_mqtt(args) == 0
    (view,) = json.loads(capsys.readouterr().out)
    assert view == {"sensor": "cold-1", "quantity": "temperature", "value": 2.0, "unit": "degC"}


def test_an_unregistered_format_is_refused_everywhere() -> None:
    assert infer_format("toy/cold-1/reading") == (None, "toy/cold-1/reading")
    with pytest.raises(ValueError, match=r"Input should be .*'shelfsense'"):
        MqttSensorConfig(topic="toy/x/reading", format="toyfw", sensor_id="x")
    with pytest.raises(DecodeError, match="unsupported payload format 'toyfw'; supported: zigbee2mqtt"):
        decode_payload("toyfw", "toy/x/reading", b"{}")
    with pytest.raises(ValueError, match="unsupported sensor format 'toyfw'"):
        SimulatedMqttSensor("toy/sim/reading", "toyfw", lambda: (4.0, 60.0))


def test_a_name_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_format(MqttFormat("zigbee2mqtt", _decode_toy))


def test_every_builtin_format_simulates_what_it_decodes() -> None:
    for name in mqtt_registry.sim_format_names():
        fmt = mqtt_registry.mqtt_format(name)
        assert fmt.sim_topic is not None
        assert infer_format(fmt.sim_topic)[0] == name  # its own simulator topic has its shape
        sample = SimSample(fmt.sim_topic, NOW, 4.5, 61.0, battery=90, quantity="temperature")
        assert fmt.encode is not None
        temperatures = [m.value for m in decode_payload(name, fmt.sim_topic, fmt.encode(sample))]
        assert temperatures and temperatures[0] == pytest.approx(4.5, abs=0.01), name
