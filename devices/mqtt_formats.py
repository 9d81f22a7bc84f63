"""MQTT sensor payloads as real firmware publishes them (sans-I/O).

* ``zigbee2mqtt``: topic ``zigbee2mqtt/<friendly_name>``, a flat JSON object such as
  ``{"temperature":4.2,"humidity":61.5,"battery":97,"linkquality":120,"voltage":3000}``. Keys we do
  not map (voltage, state, ...) are ignored; ``null`` values (Zigbee2MQTT's "not reported yet")
  are skipped. An optional ``last_seen`` (ISO 8601 or epoch milliseconds) becomes the time.
* ``tasmota``: topic ``tele/<topic>/SENSOR`` with ``{"Time":"2026-11-25T10:00:00","AM2301":
  {"Temperature":39.2,"Humidity":61.0,"DewPoint":..},"TempUnit":"F"}``. Every sensor block (DHT11,
  AM2301, SHT3X, BME280, DS18B20, DS18B20-1, ...) is read; DS18B20 blocks have only ``Id`` and
  ``Temperature``. ``TempUnit: F`` is converted to degC. ``Time`` has no zone: it is the device's
  local clock, taken as UTC (see :class:`devices.readings.Measurement`). ``stat/<topic>/STATUS10``
  (``{"StatusSNS": {...}}``) is read the same way.
* ``shelly``: Shelly Gen2/Gen3 JSON-RPC ``<id>/events/rpc`` ``NotifyStatus`` / ``NotifyFullStatus``
  with ``temperature:N`` ``{tC, tF}``, ``humidity:N`` ``{rh}``, ``devicepower:0`` ``{battery:
  {V, percent}}``, and the ``<id>/status/temperature:0`` form (:func:`decode_shelly`).
* ``esphome``: ``<prefix>/sensor/<object_id>/state``, the value as plain text; the quantity comes
  from the sensor map (``decode_payload(..., quantity=...)``) or the object id (:func:`decode_esphome`).
* ``ruuvi``: Ruuvi Gateway ``ruuvi/<gateway_mac>/<tag_mac>`` JSON carrying the tag's BLE
  advertisement as hex, RuuviTag data format 5 (and 3) decoded by :mod:`devices.ruuvi`.
* ``shelfsense``: our own documented JSON, ``shelfsense/<site>/sensors/<sensor_id>`` (see
  docs/mqtt-formats.md and :func:`decode_shelfsense`).

Topics of the same firmware that never carry measurements (Zigbee2MQTT ``bridge/...``,
``.../availability``, ``.../set``; Tasmota ``LWT``, ``STATE``, ``RESULT``, ...) decode to ``[]``,
so an edge subscribed with a wildcard does not count them as errors.

Malformed payloads raise :class:`DecodeError` naming the problem: not UTF-8, not JSON, JSON that is
not an object, non-numeric or non-finite values (``NaN``/``Infinity`` are refused at parse time),
and values outside physical plausibility (e.g. 250 degC, 130 %RH): those come from broken sensors
and must not become alarms. One bad value rejects the whole payload -- a sensor that reports one
absurd quantity is not trusted for the others in the same message.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from devices.errors import DecodeError
from devices.readings import QUANTITY_UNITS, Measurement
from devices.ruuvi import RuuviData, decode_advertisement

__all__ = [
    "FORMATS",
    "MAX_PAYLOAD_BYTES",
    "PLAUSIBLE_RANGES",
    "SHELFSENSE_MAX_READINGS",
    "decode_esphome",
    "decode_payload",
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

MAX_PAYLOAD_BYTES: Final = 64 * 1024

# Physically plausible bounds per quantity (inclusive). Wider than any one sensor's spec so that
# a real extreme is kept, narrow enough that garbage (0xFFFF/10, -273, 1e9) is refused.
PLAUSIBLE_RANGES: Final[dict[str, tuple[float, float]]] = {
    "temperature": (-60.0, 130.0),
    "humidity": (0.0, 100.0),
    "battery": (0.0, 100.0),
    "linkquality": (0.0, 255.0),
    "pressure": (300.0, 1100.0),
}

_Z2M_KEYS: Final[dict[str, tuple[str, str]]] = {
    "temperature": ("temperature", "degC"),
    "humidity": ("humidity", "%RH"),
    "battery": ("battery", "%"),
    "linkquality": ("linkquality", "lqi"),
    "pressure": ("pressure", "hPa"),
}
_TASMOTA_KEYS: Final[dict[str, tuple[str, str]]] = {
    "Temperature": ("temperature", "degC"),
    "Humidity": ("humidity", "%RH"),
    "Pressure": ("pressure", "hPa"),
}
_PRESSURE_TO_HPA: Final[dict[str, float]] = {"hPa": 1.0, "mbar": 1.0, "mmHg": 1.333224, "inHg": 33.863886}
_SHELLY_COMPONENTS: Final = frozenset({"temperature", "humidity", "devicepower"})
# Device clocks before this (2020-01-01) are unsynchronised (no SNTP yet): use the receipt time.
_MIN_EPOCH_S: Final = 1_577_836_800
_ESPHOME_NAME_HINTS: Final[dict[str, str]] = {
    "temp": "temperature",
    "humid": "humidity",
    "batt": "battery",
    "press": "pressure",
}
_ESPHOME_MAX_BYTES: Final = 64
_MAC_RE: Final = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_CHANNEL_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
SHELFSENSE_MAX_READINGS: Final = 100
_Z2M_SILENT_LEAVES: Final = frozenset({"availability", "set", "get"})
_TASMOTA_SENSOR_LEAVES: Final = frozenset({"SENSOR", "STATUS10"})


def _refuse_constant(name: str) -> Any:
    raise DecodeError(f"payload contains {name}, which is not a number")


def _parse_json_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    # orjson is strict RFC 8259 (no NaN/Infinity, valid UTF-8 only, nesting capped): every payload
    # it accepts, json.loads reads the same way. What it refuses takes the json.loads path, which
    # explains the error or (1e999, integers beyond 64 bits) lets the value checks refuse it.
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        data = _parse_json_slowly(payload)
    if not isinstance(data, dict):
        raise DecodeError(f"payload must be a JSON object, got {type(data).__name__}")
    return data


def _parse_json_slowly(payload: bytes) -> Any:
    """json.loads of a payload orjson refused, with a DecodeError that says what is wrong."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"payload is not JSON: {exc.msg} at char {exc.pos}") from exc
    except RecursionError as exc:
        raise DecodeError("payload JSON is nested too deeply") from exc


def _number(quantity: str, raw: Any, where: str) -> float:
    """A finite, plausible float for ``quantity`` or DecodeError. ``bool`` is not a number here."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise DecodeError(f"{where}: expected a number, got {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise DecodeError(f"{where}: {raw!r} is not finite")
    low, high = PLAUSIBLE_RANGES[quantity]
    if not low <= value <= high:
        raise DecodeError(f"{where}: {value} outside the plausible {quantity} range {low}..{high}")
    return value


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_time(raw: Any, where: str, epoch_unit_s: float) -> datetime:
    """ISO 8601 (naive taken as UTC) or a number of ``epoch_unit_s`` seconds since the epoch."""
    try:
        if isinstance(raw, str):
            return _as_utc(datetime.fromisoformat(raw))
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return datetime.fromtimestamp(raw * epoch_unit_s, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise DecodeError(f"{where}: unreadable time {raw!r}: {exc}") from exc
    raise DecodeError(f"{where}: unreadable time {raw!r}")


# --------------------------------------------------------------------------------------------
# Zigbee2MQTT


def decode_zigbee2mqtt(topic: str, payload: bytes) -> list[Measurement]:
    """Measurements of one Zigbee2MQTT device message (see the module docstring)."""
    parts = topic.split("/")
    if (len(parts) > 1 and parts[1] == "bridge") or parts[-1] in _Z2M_SILENT_LEAVES:
        return []
    data = _parse_json_object(payload)
    time = None
    if data.get("last_seen") is not None:
        time = _parse_time(data["last_seen"], "last_seen", 0.001)
    out = []
    for key, (quantity, unit) in _Z2M_KEYS.items():
        raw = data.get(key)
        if raw is not None:
            out.append(Measurement(quantity, _number(quantity, raw, key), unit, time))
    return out


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
# Tasmota


def decode_tasmota(topic: str, payload: bytes) -> list[Measurement]:
    """Measurements of one Tasmota ``tele/<topic>/SENSOR`` message (see the module docstring)."""
    if topic.rsplit("/", 1)[-1] not in _TASMOTA_SENSOR_LEAVES:
        return []
    data = _parse_json_object(payload)
    status = data.get("StatusSNS")
    if isinstance(status, dict):
        data = status
    unit = data.get("TempUnit", "C")
    if unit not in ("C", "F"):
        raise DecodeError(f"TempUnit must be 'C' or 'F', got {unit!r}")
    pressure_unit = data.get("PressureUnit", "hPa")
    pressure_factor = _PRESSURE_TO_HPA.get(pressure_unit) if isinstance(pressure_unit, str) else None
    if pressure_factor is None:
        raise DecodeError(f"unknown PressureUnit {pressure_unit!r}")
    time = _parse_time(data["Time"], "Time", 1.0) if data.get("Time") is not None else None
    out: list[Measurement] = []
    for block_name, block in data.items():
        if isinstance(block, dict):
            out.extend(_tasmota_block(block_name, block, unit, pressure_factor, time))
    return out


def _tasmota_block(
    name: str, block: dict[str, Any], unit: str, pressure_factor: float, time: datetime | None
) -> list[Measurement]:
    channel = name
    sensor_id = block.get("Id")
    if isinstance(sensor_id, str) and sensor_id:
        # DS18B20-1/-2 numbering follows bus enumeration and may change; the 1-Wire id does not.
        channel = f"{name.split('-', 1)[0]}:{sensor_id}"
    out = []
    for key, (quantity, q_unit) in _TASMOTA_KEYS.items():
        raw = block.get(key)
        if raw is None:
            continue
        where = f"{name}.{key}"
        if (quantity == "temperature" and unit == "F") or (quantity == "pressure" and pressure_factor != 1):
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise DecodeError(f"{where}: expected a number, got {raw!r}")
            raw = round((raw - 32.0) * 5.0 / 9.0 if quantity == "temperature" else raw * pressure_factor, 3)
        out.append(Measurement(quantity, _number(quantity, raw, where), q_unit, time, channel))
    return out


def tasmota_time(time: datetime) -> str:
    """Tasmota's ``Time`` field: the clock without a zone (aware times are written as UTC)."""
    if time.tzinfo is not None:
        time = time.astimezone(UTC).replace(tzinfo=None)
    return time.replace(microsecond=0).isoformat()


def _dew_point(temperature_c: float, humidity: float) -> float:
    """Magnus formula, as Tasmota computes ``DewPoint``."""
    humidity = max(humidity, 0.1)  # log(0) is undefined; below 0.1 %RH the dew point is moot
    gamma = math.log(humidity / 100.0) + 17.62 * temperature_c / (243.12 + temperature_c)
    return 243.12 * gamma / (17.62 - gamma)


def encode_tasmota(
    time: datetime,
    temperature: float,
    humidity: float | None,
    sensor: str = "AM2301",
    temp_unit: str = "C",
) -> bytes:
    """A Tasmota ``tele/<topic>/SENSOR`` payload; ``temperature`` is given in degC.

    Values are rounded to one decimal like Tasmota's default resolution; with ``temp_unit="F"``
    the temperature (and dew point) are written in Fahrenheit. A ``DS18B20`` sensor block carries
    only ``Id`` and ``Temperature``.
    """
    if temp_unit not in ("C", "F"):
        raise ValueError(f"temp_unit must be 'C' or 'F', got {temp_unit!r}")

    def convert(c: float) -> float:
        return round(c * 9.0 / 5.0 + 32.0 if temp_unit == "F" else c, 1)

    block: dict[str, Any]
    if sensor.startswith("DS18B20"):
        # A stable fake 1-Wire id per block name (hash() is salted per process, crc32 is not).
        block = {"Id": f"0113{zlib.crc32(sensor.encode()):08X}", "Temperature": convert(temperature)}
    else:
        block = {"Temperature": convert(temperature)}
        if humidity is not None:
            block["Humidity"] = round(humidity, 1)
            block["DewPoint"] = convert(_dew_point(temperature, humidity))
    data = {"Time": tasmota_time(time), sensor: block, "TempUnit": temp_unit}
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


# --------------------------------------------------------------------------------------------
# Shelly Gen2 / Gen3 (Plus H&T, H&T Gen3, Plus Add-on)


def _shelly_measurements(params: dict[str, Any], time: datetime | None) -> list[Measurement]:
    """Measurements in the components of a NotifyStatus/NotifyFullStatus ``params`` (or one status)."""
    out: list[Measurement] = []
    for key, status in params.items():
        kind, _, cid = key.partition(":")
        if kind not in _SHELLY_COMPONENTS or not cid.isdigit():
            continue
        if not isinstance(status, dict):
            raise DecodeError(f"{key}: component status must be an object, got {type(status).__name__}")
        if status.get("errors"):
            # e.g. ["read"] or ["out_of_range"]: the sensor itself says its value is not to be trusted.
            raise DecodeError(f"{key} reports errors {status['errors']!r}")
        out.extend(_shelly_component(kind, key, cid, status, time))
    return out


def _shelly_component(
    kind: str, key: str, cid: str, status: dict[str, Any], time: datetime | None
) -> list[Measurement]:
    if kind == "temperature":
        if status.get("tC") is not None:
            value = _number("temperature", status["tC"], f"{key}.tC")
        elif status.get("tF") is not None:
            fahrenheit = status["tF"]
            if isinstance(fahrenheit, bool) or not isinstance(fahrenheit, (int, float)):
                raise DecodeError(f"{key}.tF: expected a number, got {fahrenheit!r}")
            value = _number("temperature", round((fahrenheit - 32.0) * 5.0 / 9.0, 3), f"{key}.tF")
        else:
            return []  # null: an add-on probe that is not connected
        return [Measurement("temperature", value, "degC", time, cid)]
    if kind == "humidity":
        if status.get("rh") is None:
            return []
        return [Measurement("humidity", _number("humidity", status["rh"], f"{key}.rh"), "%RH", time, cid)]
    battery = status.get("battery")  # devicepower
    if not isinstance(battery, dict) or battery.get("percent") is None:
        return []
    percent = _number("battery", battery["percent"], f"{key}.battery.percent")
    return [Measurement("battery", percent, "%", time, cid)]


def _epoch_time(raw: Any) -> datetime | None:
    """Epoch seconds (Shelly ``params.ts``, Ruuvi ``ts``); None (= receipt time) if absent or unsynced."""
    if (
        isinstance(raw, bool)
        or not isinstance(raw, (int, float))
        or not math.isfinite(raw)
        or raw < _MIN_EPOCH_S
    ):
        return None
    return _parse_time(raw, "ts", 1.0)


def decode_shelly(topic: str, payload: bytes) -> list[Measurement]:
    """Shelly Gen2+ ``<id>/events/rpc`` notifications and ``<id>/status/<component>`` messages.

    ``events/rpc`` carries JSON-RPC notifications ``{"src":..,"dst":..,"method":"NotifyStatus",
    "params":{"ts":1706531398.1,"temperature:0":{"id":0,"tC":20.4,"tF":68.7}}}``; ``NotifyStatus``
    and ``NotifyFullStatus`` are read, other methods (``NotifyEvent``) carry no values. The
    ``status/temperature:0`` form carries one component status without a time. The component id
    becomes the :attr:`Measurement.channel` (``"0"``, or ``"100"``.. for Plus Add-on probes).
    """
    parts = topic.split("/")
    if len(parts) >= 3 and parts[-2] == "events" and parts[-1] == "rpc":
        data = _parse_json_object(payload)
        if data.get("method") not in ("NotifyStatus", "NotifyFullStatus"):
            return []
        params = data.get("params")
        if not isinstance(params, dict):
            raise DecodeError(f"{data['method']} without a params object")
        return _shelly_measurements(params, _epoch_time(params.get("ts")))
    if len(parts) >= 3 and parts[-2] == "status" and parts[-1].partition(":")[0] in _SHELLY_COMPONENTS:
        return _shelly_measurements({parts[-1]: _parse_json_object(payload)}, None)
    return []  # <id>/online, <id>/events/... of other components, <id>/rpc requests


def encode_shelly_notify_status(
    src: str,
    *,
    temperature: float | None = None,
    humidity: float | None = None,
    battery: int | None = None,
    ts: float | None = None,
    component_id: int = 0,
) -> bytes:
    """A ``<src>/events/rpc`` NotifyStatus as a Plus H&T sends it on wake-up (``None`` omitted)."""
    params: dict[str, Any] = {"ts": round(ts, 2) if ts is not None else None}
    if temperature is not None:
        params[f"temperature:{component_id}"] = {
            "id": component_id,
            "tC": round(temperature, 1),
            "tF": round(temperature * 9.0 / 5.0 + 32.0, 1),
        }
    if humidity is not None:
        params[f"humidity:{component_id}"] = {"id": component_id, "rh": round(humidity, 1)}
    if battery is not None:
        params["devicepower:0"] = {
            "id": 0,
            "battery": {"V": round(4.5 + 1.5 * battery / 100.0, 2), "percent": battery},
            "external": {"present": False},
        }
    if ts is None:
        del params["ts"]
    message = {"src": src, "dst": f"{src}/events", "method": "NotifyStatus", "params": params}
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def encode_shelly_temperature_status(temperature: float, component_id: int = 0) -> bytes:
    """The ``<id>/status/temperature:<cid>`` payload (generic status updates over MQTT)."""
    status = {"id": component_id, "tC": round(temperature, 1), "tF": round(temperature * 9.0 / 5.0 + 32.0, 1)}
    return json.dumps(status, separators=(",", ":"), allow_nan=False).encode()


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
    if len(payload) > _ESPHOME_MAX_BYTES:
        raise DecodeError(f"ESPHome state of {len(payload)} bytes is not a number")
    try:
        text = bytes(payload).decode("ascii").strip()
        raw = float(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"ESPHome state {bytes(payload)[:32]!r} is not a number") from exc
    return [Measurement(q, _number(q, raw, parts[-2]), QUANTITY_UNITS[q])]


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


def ruuvi_measurements(data: RuuviData, time: datetime | None) -> list[Measurement]:
    """Contract measurements of a decoded tag (absent values skipped, the rest plausibility-checked)."""
    out: list[Measurement] = []
    if data.temperature_c is not None:
        out.append(
            Measurement(
                "temperature", _number("temperature", data.temperature_c, "temperature"), "degC", time
            )
        )
    if data.humidity is not None:
        out.append(Measurement("humidity", _number("humidity", data.humidity, "humidity"), "%RH", time))
    if data.pressure_pa is not None:
        out.append(
            Measurement("pressure", _number("pressure", data.pressure_pa / 100.0, "pressure"), "hPa", time)
        )
    if data.battery_mv is not None:
        out.append(
            Measurement("battery", ruuvi_battery_percent(data.battery_mv, data.temperature_c), "%", time)
        )
    return out


def decode_ruuvi(topic: str, payload: bytes) -> list[Measurement]:
    """Ruuvi Gateway ``<prefix>/<gateway_mac>/<tag_mac>``: JSON with the advertisement as hex ``data``.

    ``{"gw_mac":"C8:25:2D:8E:9C:2C","rssi":-62,"aoa":[],"gwts":1728000000,"ts":1728000000,
    "data":"0201061BFF990405...","coords":""}`` -- ``ts`` (epoch seconds, a string in older
    firmware) is when the gateway heard the tag. Advertisements of other BLE devices (a gateway
    without the "Ruuvi only" filter forwards them) and the ``gw_status`` topic decode to ``[]``.
    """
    if not _MAC_RE.fullmatch(topic.rsplit("/", 1)[-1]):
        return []
    data = _parse_json_object(payload)
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
    return ruuvi_measurements(tag, _epoch_time(raw_ts))


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
    data = _parse_json_object(payload)
    if data.get("v") != 1:
        raise DecodeError(f"unsupported ShelfSense sensor format version {data.get('v')!r} (expected 1)")
    readings = data.get("readings")
    if not isinstance(readings, list):
        raise DecodeError("'readings' must be a list")
    if len(readings) > SHELFSENSE_MAX_READINGS:
        raise DecodeError(f"{len(readings)} readings exceed {SHELFSENSE_MAX_READINGS} per message")
    return [_shelfsense_reading(i, item) for i, item in enumerate(readings)]


def _shelfsense_reading(i: int, item: Any) -> Measurement:
    where = f"readings[{i}]"
    if not isinstance(item, dict):
        raise DecodeError(f"{where} must be an object")
    quantity, unit = item.get("quantity"), item.get("unit")
    if not isinstance(quantity, str) or quantity not in QUANTITY_UNITS:
        raise DecodeError(f"{where}.quantity {quantity!r} is not one of {', '.join(QUANTITY_UNITS)}")
    if unit != QUANTITY_UNITS[quantity]:
        raise DecodeError(f"{where}.unit {unit!r} must be {QUANTITY_UNITS[quantity]!r} for {quantity}")
    value = _number(quantity, item.get("value"), f"{where}.value")
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
        time = parsed.astimezone(UTC)
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
            item["time"] = _as_utc(m.time).isoformat().replace("+00:00", "Z")
        if m.channel is not None:
            item["channel"] = m.channel
        readings.append(item)
    return json.dumps({"v": 1, "readings": readings}, separators=(",", ":"), allow_nan=False).encode()


def shelfsense_topic(site_id: str, sensor_id: str) -> str:
    return f"shelfsense/{site_id}/sensors/{sensor_id}"


# --------------------------------------------------------------------------------------------

_DECODERS: Final[dict[str, Callable[[str, bytes, str | None], list[Measurement]]]] = {
    "zigbee2mqtt": lambda topic, payload, _q: decode_zigbee2mqtt(topic, payload),
    "tasmota": lambda topic, payload, _q: decode_tasmota(topic, payload),
    "shelly": lambda topic, payload, _q: decode_shelly(topic, payload),
    "esphome": decode_esphome,
    "ruuvi": lambda topic, payload, _q: decode_ruuvi(topic, payload),
    "shelfsense": lambda topic, payload, _q: decode_shelfsense(topic, payload),
}
FORMATS: Final = tuple(_DECODERS)


def decode_payload(fmt: str, topic: str, payload: bytes, *, quantity: str | None = None) -> list[Measurement]:
    """Measurements in one MQTT message of firmware format ``fmt``; raises :class:`DecodeError`.

    ``quantity`` is the sensor map's hint for formats whose payload does not say (ESPHome); the
    other formats ignore it.
    """
    decoder = _DECODERS.get(fmt)
    if decoder is None:
        raise DecodeError(f"unsupported payload format {fmt!r}; supported: {', '.join(FORMATS)}")
    try:
        return decoder(topic, payload, quantity)
    except DecodeError:
        raise
    except (ArithmeticError, ValueError, RecursionError) as exc:
        # Hostile numbers: a 400-digit integer overflows float() (OverflowError), a 5,000-digit one
        # exceeds Python's int-from-string limit (ValueError). Whatever arithmetic a decoder does on
        # such a value, the payload is malformed, never a crash of the receive loop.
        raise DecodeError(f"unreadable value in payload: {type(exc).__name__}: {exc}") from exc
