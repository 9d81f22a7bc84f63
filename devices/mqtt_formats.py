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
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from devices.errors import DecodeError
from devices.readings import Measurement

__all__ = [
    "FORMATS",
    "MAX_PAYLOAD_BYTES",
    "PLAUSIBLE_RANGES",
    "decode_payload",
    "decode_tasmota",
    "decode_zigbee2mqtt",
    "encode_tasmota",
    "encode_zigbee2mqtt",
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
_Z2M_SILENT_LEAVES: Final = frozenset({"availability", "set", "get"})
_TASMOTA_SENSOR_LEAVES: Final = frozenset({"SENSOR", "STATUS10"})


def _refuse_constant(name: str) -> Any:
    raise DecodeError(f"payload contains {name}, which is not a number")


def _parse_json_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"payload is not JSON: {exc.msg} at char {exc.pos}") from exc
    except RecursionError as exc:
        raise DecodeError("payload JSON is nested too deeply") from exc
    if not isinstance(data, dict):
        raise DecodeError(f"payload must be a JSON object, got {type(data).__name__}")
    return data


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

_DECODERS: Final[dict[str, Callable[[str, bytes], list[Measurement]]]] = {
    "zigbee2mqtt": decode_zigbee2mqtt,
    "tasmota": decode_tasmota,
}
FORMATS: Final = tuple(_DECODERS)


def decode_payload(fmt: str, topic: str, payload: bytes) -> list[Measurement]:
    """Measurements in one MQTT message of firmware format ``fmt``; raises :class:`DecodeError`."""
    decoder = _DECODERS.get(fmt)
    if decoder is None:
        raise DecodeError(f"unsupported payload format {fmt!r}; supported: {', '.join(FORMATS)}")
    return decoder(topic, payload)
