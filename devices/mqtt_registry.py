"""The MQTT firmware formats, registered in one place: name, topic shapes, decoder, simulator encoder.

Everything that names a format reads it from here: the config's ``[[mqtt.sensors]] format``
(a validator, not a hand-typed list), ``shelfsense decode mqtt`` (its ``--format`` and the topic
inference), ``shelfsense sim mqtt --format``, the simulators' payloads and the edge's intake. A new
firmware format is one :func:`register_format` call in the module that implements it (as
zigbee-herdsman-converters describes devices as data): no other file needs an edit.

Pure like the codecs it registers (no I/O); the built-in formats are registered at the bottom.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from devices import ruuvi
from devices.errors import DecodeError
from devices.mqtt_formats import (
    RUUVI_GATEWAY_MAC,
    decode_esphome,
    decode_ruuvi,
    decode_shelfsense,
    decode_shelly,
    decode_tasmota,
    decode_zigbee2mqtt,
    encode_esphome_state,
    encode_ruuvi_gateway,
    encode_shelfsense,
    encode_shelly_notify_status,
    encode_tasmota,
    encode_zigbee2mqtt,
    esphome_quantity,
)
from devices.readings import QUANTITY_UNITS, Measurement

__all__ = [
    "Decoder",
    "Encoder",
    "MqttFormat",
    "SimSample",
    "decode_payload",
    "format_names",
    "infer_format",
    "mqtt_format",
    "register_format",
    "sim_format_names",
]

# (topic, payload, quantity hint from the sensor map) -> measurements; raises DecodeError.
Decoder = Callable[[str, bytes, str | None], list[Measurement]]


@dataclass(frozen=True, slots=True)
class SimSample:
    """What a simulated sensor publishes once: its topic, the time and its values."""

    topic: str
    now: datetime
    temperature: float
    humidity: float
    battery: int | None = None
    linkquality: int | None = None
    temp_unit: Literal["C", "F"] = "C"  # Tasmota: a probe configured for Fahrenheit
    quantity: str | None = None  # ESPHome: which value this state topic carries
    sequence: int = 0  # Ruuvi: the advertisement's measurement sequence


Encoder = Callable[[SimSample], bytes]


@dataclass(frozen=True, slots=True)
class MqttFormat:
    """One firmware format.

    ``topics``: regular expressions of the topics it publishes measurements on, for inferring the
    format from a topic; group ``sensor`` names the device (plus ``node`` when the device name has
    two parts, ESPHome's ``node/object_id``). ``encode``/``sim_topic``: how the simulator publishes
    it (``None``: not simulated).
    """

    name: str
    decode: Decoder
    topics: tuple[str, ...] = ()
    encode: Encoder | None = None
    sim_topic: str | None = None

    def sensor_of(self, topic: str) -> str | None:
        """The sensor name in ``topic`` if it has one of this format's shapes, else None."""
        for pattern in self.topics:
            match = re.match(pattern, topic)
            if match:
                groups = match.groupdict()
                return f"{groups['node']}/{groups['sensor']}" if groups.get("node") else groups["sensor"]
        return None


_FORMATS: Final[dict[str, MqttFormat]] = {}


def register_format(fmt: MqttFormat) -> MqttFormat:
    """Add ``fmt`` (a name registered twice is a programming error, refused)."""
    if fmt.name in _FORMATS and _FORMATS[fmt.name] is not fmt:
        raise ValueError(f"MQTT format {fmt.name!r} is already registered")
    if (fmt.encode is None) != (fmt.sim_topic is None):
        raise ValueError(f"MQTT format {fmt.name!r}: give both encode and sim_topic, or neither")
    for pattern in fmt.topics:
        re.compile(pattern)  # a bad pattern fails at registration, not at the first topic
    _FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> tuple[str, ...]:
    return tuple(_FORMATS)


def sim_format_names() -> tuple[str, ...]:
    """The formats the simulator can publish."""
    return tuple(name for name, fmt in _FORMATS.items() if fmt.encode is not None)


def mqtt_format(name: str) -> MqttFormat:
    """The format called ``name``; :class:`DecodeError` naming the supported ones otherwise."""
    fmt = _FORMATS.get(name)
    if fmt is None:
        raise DecodeError(f"unsupported payload format {name!r}; supported: {', '.join(_FORMATS)}")
    return fmt


def infer_format(topic: str) -> tuple[str | None, str]:
    """``(format, sensor name)`` from a topic's shape; format ``None`` when no firmware matches."""
    for fmt in _FORMATS.values():
        sensor = fmt.sensor_of(topic)
        if sensor is not None:
            return fmt.name, sensor
    return None, topic


def decode_payload(fmt: str, topic: str, payload: bytes, *, quantity: str | None = None) -> list[Measurement]:
    """Measurements in one MQTT message of firmware format ``fmt``; raises :class:`DecodeError`.

    ``quantity`` is the sensor map's hint for formats whose payload does not say (ESPHome); the
    other formats ignore it.
    """
    decoder = _FORMATS[fmt].decode if fmt in _FORMATS else mqtt_format(fmt).decode
    try:
        return decoder(topic, payload, quantity)
    except DecodeError:
        raise
    except (ArithmeticError, ValueError, RecursionError) as exc:
        # Hostile numbers: a 400-digit integer overflows float() (OverflowError), a 5,000-digit one
        # exceeds Python's int-from-string limit (ValueError). Whatever arithmetic a decoder does on
        # such a value, the payload is malformed, never a crash of the receive loop.
        raise DecodeError(f"unreadable value in payload: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The built-in formats (docs/mqtt-formats.md)


def _topic_only(decode: Callable[[str, bytes], list[Measurement]]) -> Decoder:
    return lambda topic, payload, _quantity: decode(topic, payload)


def _esphome_value(s: SimSample) -> bytes:
    quantity = s.quantity or esphome_quantity(s.topic)
    return encode_esphome_state(s.temperature if quantity == "temperature" else s.humidity, 1)


def _shelly_status(s: SimSample) -> bytes:
    src = s.topic.split("/", 1)[0]
    return encode_shelly_notify_status(
        src, temperature=s.temperature, humidity=s.humidity, battery=s.battery, ts=s.now.timestamp()
    )


def _ruuvi_advertisement(s: SimSample) -> bytes:
    tag_mac = s.topic.rsplit("/", 1)[-1]
    # 3.0 V for a full cell down to 2.5 V for an empty one (see ruuvi_battery_percent).
    battery_mv = 2500 + 5 * (s.battery if s.battery is not None else 90)
    raw = ruuvi.encode_df5(
        s.temperature,
        s.humidity,
        101325,
        battery_mv=battery_mv,
        sequence=s.sequence,
        mac=tag_mac if len(tag_mac) == 17 else None,
    )
    gw_mac = s.topic.split("/")[1] if s.topic.count("/") >= 2 else RUUVI_GATEWAY_MAC
    return encode_ruuvi_gateway(gw_mac, ruuvi.advertisement(raw), ts=int(s.now.timestamp()))


def _shelfsense_readings(s: SimSample) -> bytes:
    readings = [Measurement("temperature", round(s.temperature, 2), QUANTITY_UNITS["temperature"], s.now)]
    readings.append(Measurement("humidity", round(s.humidity, 2), QUANTITY_UNITS["humidity"], s.now))
    if s.battery is not None:
        readings.append(Measurement("battery", float(s.battery), QUANTITY_UNITS["battery"], s.now))
    return encode_shelfsense(readings)


for _builtin in (
    MqttFormat(
        "zigbee2mqtt",
        _topic_only(decode_zigbee2mqtt),
        (r"^zigbee2mqtt/(?P<sensor>[^/]+)$",),
        lambda s: encode_zigbee2mqtt(s.temperature, s.humidity, s.battery, s.linkquality),
        "zigbee2mqtt/shelfsense_sim",
    ),
    MqttFormat(
        "tasmota",
        _topic_only(decode_tasmota),
        (r"^(?:tele|stat)/(?P<sensor>[^/]+)/(?:SENSOR|STATUS10)$",),
        lambda s: encode_tasmota(s.now, s.temperature, s.humidity, temp_unit=s.temp_unit),
        "tele/shelfsense_sim/SENSOR",
    ),
    MqttFormat(
        "shelly",
        _topic_only(decode_shelly),
        (
            r"^(?P<sensor>[^/]+)/events/rpc$",
            r"^shellies/(?P<sensor>[^/]+)/(?:sensor/\w+|ext_(?:temperature|humidity)/\d+)$",
        ),
        _shelly_status,
        "shellyhtg3-shelfsense-sim/events/rpc",
    ),
    MqttFormat(
        "esphome",
        decode_esphome,
        (r"^(?P<node>[^/]+)/sensor/(?P<sensor>[^/]+)/state$",),
        _esphome_value,
        "shelfsense-sim/sensor/temperature/state",
    ),
    MqttFormat(
        "ruuvi",
        _topic_only(decode_ruuvi),
        (r"^ruuvi/[^/]+/(?P<sensor>[^/]+)$",),
        _ruuvi_advertisement,
        f"ruuvi/{RUUVI_GATEWAY_MAC}/D1:2E:3F:40:51:62",
    ),
    MqttFormat(
        "shelfsense",
        _topic_only(decode_shelfsense),
        (r"^shelfsense/[^/]+/sensors/(?P<sensor>[^/]+)$",),
        _shelfsense_readings,
        "shelfsense/site-1/sensors/shelfsense_sim",
    ),
):
    register_format(_builtin)
