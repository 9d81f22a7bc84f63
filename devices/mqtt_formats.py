"""MQTT sensor payloads as real firmware publishes them (sans-I/O).

* ``zigbee2mqtt``: topic ``zigbee2mqtt/<friendly_name>``, a flat JSON object such as
  ``{"temperature":4.2,"humidity":61.5,"battery":97,"linkquality":120,"voltage":3000}``. Keys we do
  not map (voltage, state, ...) are ignored; ``null`` values (Zigbee2MQTT's "not reported yet")
  are skipped; legacy converters' numbers sent as strings (``"battery": "37.00"``) are read. An
  optional ``last_seen`` (ISO 8601 or epoch milliseconds) becomes the time.
* ``tasmota``: :mod:`devices.mqtt_tasmota` (sensor blocks, MI32 BLE sensors' battery, dotted times).
* ``shelly``: :mod:`devices.mqtt_shelly` (Gen2/Gen3 JSON-RPC notifications, Gen1 plain values).
* ``esphome``: ``<prefix>/sensor/<object_id>/state``, the value as plain text; the quantity comes
  from the sensor map (``decode_payload(..., quantity=...)``) or the object id (:func:`decode_esphome`).
* ``ruuvi``: Ruuvi Gateway ``ruuvi/<gateway_mac>/<tag_mac>`` JSON carrying the tag's BLE
  advertisement as hex, RuuviTag data format 5 (and 3) decoded by :mod:`devices.ruuvi`.
* ``shelfsense``: our own documented JSON, ``shelfsense/<site>/sensors/<sensor_id>`` (see
  docs/mqtt-formats.md and :func:`decode_shelfsense`).

The formats are registered (name, topic shapes, decoder, simulator encoder) in
:mod:`devices.mqtt_registry`, whose ``decode_payload`` picks the decoder by format name.

Topics of the same firmware that never carry measurements (Zigbee2MQTT ``bridge/...``,
``.../availability``, ``.../set``; Tasmota ``LWT``, ``STATE``, ``RESULT``, ...) decode to ``[]``,
so an edge subscribed with a wildcard does not count them as errors.

Malformed payloads raise :class:`DecodeError` naming the problem: not UTF-8, not JSON, JSON that is
not an object. Values that are non-numeric, non-finite (``NaN``/``Infinity`` are refused at parse
time) or outside physical plausibility (e.g. 250 degC, 130 %RH: broken sensors, which must not
become alarms) are refused one by one: a payload partly understood yields what it can, and the
decoders return a :class:`devices.mqtt_common.Decoded` list whose ``rejected`` names the rest (the
edge counts them). Only a payload with nothing usable raises. Device times before 2020 (clocks never
synchronised) are replaced by the receipt time, for every format (:mod:`devices.mqtt_common`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any, Final

from devices.errors import DecodeError
from devices.mqtt_common import (
    MAX_PAYLOAD_BYTES,
    PLAUSIBLE_RANGES,
    Decoded,
    as_utc,
    device_time,
    epoch_time,
    finish,
    number,
    optional_time,
    parse_json_object,
    text_number,
)
from devices.mqtt_shelly import decode_shelly, encode_shelly_notify_status, encode_shelly_temperature_status
from devices.mqtt_tasmota import decode_tasmota, encode_tasmota, tasmota_time
from devices.readings import QUANTITY_UNITS, Measurement
from devices.ruuvi import RuuviData, decode_advertisement

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "PLAUSIBLE_RANGES",
    "RUUVI_GATEWAY_MAC",
    "SHELFSENSE_MAX_READINGS",
    "Decoded",
    "decode_esphome",
    "decode_ruuvi",
    "decode_shelfsense",
    "decode_shelly",
    "decode_tasmota",
    "decode_zigbee2mqtt",
    "encode_esphome_state",
    "encode_ruuvi_gateway",
    "encode_shelfsense",
    "encode_shelly_notify_status",
    "encode_shelly_temperature_status",
    "encode_tasmota",
    "encode_zigbee2mqtt",
    "esphome_quantity",
    "ruuvi_battery_percent",
    "ruuvi_measurements",
    "shelfsense_topic",
    "tasmota_time",
]

# Zigbee2MQTT's keys are our quantity names, in our units.
_Z2M_KEYS: Final[dict[str, tuple[str, str]]] = {q: (q, unit) for q, unit in QUANTITY_UNITS.items()}
_ESPHOME_NAME_HINTS: Final[dict[str, str]] = {
    "temp": "temperature",
    "humid": "humidity",
    "batt": "battery",
    "press": "pressure",
}
RUUVI_GATEWAY_MAC: Final = "C8:25:2D:8E:9C:2C"  # a gateway's MAC, as in Ruuvi's examples
_MAC_RE: Final = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_CHANNEL_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
SHELFSENSE_MAX_READINGS: Final = 100
_Z2M_SILENT_LEAVES: Final = frozenset({"availability", "set", "get"})


# --------------------------------------------------------------------------------------------
# Zigbee2MQTT


def decode_zigbee2mqtt(topic: str, payload: bytes) -> list[Measurement]:
    """Measurements of one Zigbee2MQTT device message (see the module docstring)."""
    parts = topic.split("/")
    if (len(parts) > 1 and parts[1] == "bridge") or parts[-1] in _Z2M_SILENT_LEAVES:
        return []
    data = parse_json_object(payload)
    out = Decoded()
    time = optional_time(out, data.get("last_seen"), "last_seen", 0.001)
    for key, (quantity, unit) in _Z2M_KEYS.items():
        raw = data.get(key)
        if raw is not None:
            out.take(partial(_z2m_value, key, quantity, unit, raw, time))
    return finish(out)


def _z2m_value(key: str, quantity: str, unit: str, raw: Any, time: datetime | None) -> Measurement:
    if isinstance(raw, str):  # legacy converters: "battery": "37.00"
        return Measurement(quantity, text_number(quantity, raw.encode(), key), unit, time)
    return Measurement(quantity, number(quantity, raw, key), unit, time)


def encode_zigbee2mqtt(
    temperature: float | None,
    humidity: float | None,
    battery: int | None = None,
    linkquality: int | None = None,
) -> bytes:
    """A Zigbee2MQTT-style payload (values rounded as the converters do; ``None`` keys omitted)."""
    data: dict[str, Any] = {}
    if temperature is not None:
        data["temperature"] = round(temperature, 2)
    if humidity is not None:
        data["humidity"] = round(humidity, 2)
    if battery is not None:
        data["battery"] = battery
        data["voltage"] = 2500 + 5 * battery  # real devices send it; decoders must ignore it
    if linkquality is not None:
        data["linkquality"] = linkquality
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


# --------------------------------------------------------------------------------------------
# ESPHome


def esphome_quantity(topic: str) -> str | None:
    """The quantity a sensor's object id names unambiguously (``cold_room_temperature``), else None."""
    parts = topic.split("/")
    name = parts[-2].lower() if len(parts) >= 4 else ""
    hits = {quantity for word, quantity in _ESPHOME_NAME_HINTS.items() if word in name}
    return hits.pop() if len(hits) == 1 else None


def decode_esphome(topic: str, payload: bytes, quantity: str | None = None) -> list[Measurement]:
    """ESPHome ``<prefix>/sensor/<object_id>/state``: the value as plain text (``"4.2"``).

    The payload has no quantity and no unit. ``quantity`` (from the sensor map) says what it is;
    without it the object id must name it (``..temperature``, ``..humidity``, ``..battery``,
    ``..pressure``). The value is taken in the contract unit of that quantity (degC, %RH, %, hPa),
    ESPHome's defaults. ``nan`` (ESPHome's "no valid reading", e.g. a DHT that did not answer) is
    refused like any other non-number. Other topics (``<prefix>/status``, ``binary_sensor``,
    ``debug``) decode to ``[]``.
    """
    parts = topic.split("/")
    if len(parts) < 4 or parts[-3] != "sensor" or parts[-1] != "state":
        return []
    q = quantity or esphome_quantity(topic)
    if q is None:
        raise DecodeError(
            f"ESPHome sensor {parts[-2]!r}: set `quantity` in the sensor map (payload has none)"
        )
    if q not in QUANTITY_UNITS:
        raise DecodeError(f"unknown quantity {q!r}")
    return [Measurement(q, text_number(q, payload, f"ESPHome state {parts[-2]}"), QUANTITY_UNITS[q])]


def encode_esphome_state(value: float, accuracy_decimals: int = 1) -> bytes:
    """The state text ESPHome publishes (``accuracy_decimals`` as in the sensor's YAML)."""
    return f"{value:.{accuracy_decimals}f}".encode()


# --------------------------------------------------------------------------------------------
# Ruuvi Gateway


def ruuvi_battery_percent(battery_mv: int, temperature_c: float | None) -> float:
    """An approximate state of charge of the tag's CR2477 cell, linear from "low" to 3.0 V.

    "Low" is Ruuvi Station's temperature-dependent low-battery threshold (2.5 V above 0 degC,
    2.3 V down to -20 degC, 2.0 V below): a cold cell sags, and a freezer tag is not empty at 2.4 V.
    """
    t = 20.0 if temperature_c is None else temperature_c
    empty = 2500 if t >= 0 else 2300 if t >= -20 else 2000
    return float(max(0, min(100, round((battery_mv - empty) * 100 / (3000 - empty)))))


def ruuvi_measurements(data: RuuviData, time: datetime | None) -> Decoded:
    """Contract measurements of a decoded tag (absent values skipped, the rest plausibility-checked)."""
    out = Decoded()
    values = (
        ("temperature", data.temperature_c),
        ("humidity", data.humidity),
        ("pressure", None if data.pressure_pa is None else data.pressure_pa / 100.0),
    )
    for quantity, raw in values:
        if raw is not None:
            out.take(partial(_measurement, quantity, raw, QUANTITY_UNITS[quantity], time))
    if data.battery_mv is not None:
        battery = ruuvi_battery_percent(data.battery_mv, data.temperature_c)
        out.append(Measurement("battery", battery, QUANTITY_UNITS["battery"], time))
    return finish(out)


def _measurement(quantity: str, raw: Any, unit: str, time: datetime | None) -> Measurement:
    return Measurement(quantity, number(quantity, raw, quantity), unit, time)


def decode_ruuvi(topic: str, payload: bytes) -> list[Measurement]:
    """Ruuvi Gateway ``<prefix>/<gateway_mac>/<tag_mac>``: JSON with the advertisement as hex ``data``.

    ``{"gw_mac":"C8:25:2D:8E:9C:2C","rssi":-62,"aoa":[],"gwts":1728000000,"ts":1728000000,
    "data":"0201061BFF990405...","coords":""}`` -- ``ts`` (epoch seconds, a string in older
    firmware) is when the gateway heard the tag. Advertisements of other BLE devices (a gateway
    without the "Ruuvi only" filter forwards them) and the ``gw_status`` topic decode to ``[]``.
    """
    if not _MAC_RE.fullmatch(topic.rsplit("/", 1)[-1]):
        return []
    data = parse_json_object(payload)
    hex_data = data.get("data")
    if not isinstance(hex_data, str):
        raise DecodeError(f"Ruuvi Gateway message without a hex 'data' string: {hex_data!r}")
    try:
        adv = bytes.fromhex(hex_data)
    except ValueError as exc:
        raise DecodeError(f"Ruuvi 'data' is not hex: {exc}") from exc
    tag = decode_advertisement(adv)
    if tag is None:
        return []
    raw_ts = data.get("ts")
    if isinstance(raw_ts, str) and raw_ts.isdigit():
        raw_ts = int(raw_ts)
    return ruuvi_measurements(tag, epoch_time(raw_ts))


def encode_ruuvi_gateway(gw_mac: str, adv: bytes, *, rssi: int = -60, ts: int | None = None) -> bytes:
    """A Ruuvi Gateway MQTT message carrying one advertisement (see :mod:`devices.ruuvi`)."""
    message: dict[str, Any] = {"gw_mac": gw_mac, "rssi": rssi, "aoa": [], "gwts": ts, "ts": ts}
    message["data"] = adv.hex().upper()
    message["coords"] = ""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


# --------------------------------------------------------------------------------------------
# ShelfSense's own format (docs/mqtt-formats.md)


def decode_shelfsense(topic: str, payload: bytes) -> list[Measurement]:
    """``shelfsense/<site>/sensors/<id>``: ``{"v":1,"readings":[{quantity,value,unit,time?,channel?}]}``.

    Strict: the version must be 1, every quantity one of the contract's, its unit exactly the
    contract unit, a time (if given) ISO 8601 *with* an offset. Unknown keys are ignored so that
    version 1 can grow optional fields. Other ``shelfsense/...`` topics (the edge's own alarms)
    decode to ``[]``.
    """
    parts = topic.split("/")
    if len(parts) < 2 or parts[-2] != "sensors":
        return []
    data = parse_json_object(payload)
    if data.get("v") != 1:
        raise DecodeError(f"unsupported ShelfSense sensor format version {data.get('v')!r} (expected 1)")
    readings = data.get("readings")
    if not isinstance(readings, list):
        raise DecodeError("'readings' must be a list")
    if len(readings) > SHELFSENSE_MAX_READINGS:
        raise DecodeError(f"{len(readings)} readings exceed {SHELFSENSE_MAX_READINGS} per message")
    out = Decoded()
    for i, item in enumerate(readings):
        out.take(partial(_shelfsense_reading, i, item))
    return finish(out)


def _shelfsense_reading(i: int, item: Any) -> Measurement:
    where = f"readings[{i}]"
    if not isinstance(item, dict):
        raise DecodeError(f"{where} must be an object")
    quantity, unit = item.get("quantity"), item.get("unit")
    if not isinstance(quantity, str) or quantity not in QUANTITY_UNITS:
        raise DecodeError(f"{where}.quantity {quantity!r} is not one of {', '.join(QUANTITY_UNITS)}")
    if unit != QUANTITY_UNITS[quantity]:
        raise DecodeError(f"{where}.unit {unit!r} must be {QUANTITY_UNITS[quantity]!r} for {quantity}")
    value = number(quantity, item.get("value"), f"{where}.value")
    time = None
    if item.get("time") is not None:
        raw = item["time"]
        if not isinstance(raw, str):
            raise DecodeError(f"{where}.time must be an ISO 8601 string")
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise DecodeError(f"{where}.time: unreadable time {raw!r}") from exc
        if parsed.tzinfo is None:
            raise DecodeError(f"{where}.time {raw!r} has no UTC offset")
        time = device_time(parsed)
    channel = item.get("channel")
    if channel is not None and (not isinstance(channel, str) or not _CHANNEL_RE.fullmatch(channel)):
        raise DecodeError(f"{where}.channel {channel!r} must match {_CHANNEL_RE.pattern}")
    return Measurement(quantity, value, unit, time, channel)


def encode_shelfsense(measurements: Sequence[Measurement]) -> bytes:
    """A ShelfSense sensor message (times written as UTC ISO 8601 with ``Z``)."""
    readings = []
    for m in measurements:
        item: dict[str, Any] = {"quantity": m.quantity, "value": m.value, "unit": m.unit}
        if m.time is not None:
            item["time"] = as_utc(m.time).isoformat().replace("+00:00", "Z")
        if m.channel is not None:
            item["channel"] = m.channel
        readings.append(item)
    return json.dumps({"v": 1, "readings": readings}, separators=(",", ":"), allow_nan=False).encode()


def shelfsense_topic(site_id: str, sensor_id: str) -> str:
    return f"shelfsense/{site_id}/sensors/{sensor_id}"
