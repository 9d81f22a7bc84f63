"""Tasmota ``tele/<topic>/SENSOR`` and ``stat/<topic>/STATUS10`` payloads (sans-I/O).

``{"Time":"2026-11-25T10:00:00","AM2301":{"Temperature":39.2,"Humidity":61.0,"DewPoint":..},
"TempUnit":"F"}``: every sensor block (DHT11, AM2301, SHT3X, BME280, DS18B20, DS18B20-1, ...) is
read; DS18B20 blocks have only ``Id`` and ``Temperature``. BLE sensors bridged by Tasmota's MI32 /
HM-1x drivers (``"LYWSD03-52680f":{"mac":..,"Temperature":..,"Humidity":..,"Battery":100,
"RSSI":-72}``, LYWSD02, MJ_HT_V1, ...) carry their ``Battery`` percentage too. ``TempUnit: F`` is
converted to degC. ``Time`` has no zone: it is the device's local clock, taken as UTC (see
:class:`devices.readings.Measurement`); firmware before 6.x writes it dotted
(``"2018.02.15 01:00:50"``), and a clock before 2020 (never synchronised) means receipt time.
``stat/<topic>/STATUS10`` (``{"StatusSNS": {...}}``) is read the same way. A value that is not
plausible is counted in ``rejected`` and the other values of the message are kept.
"""

from __future__ import annotations

import json
import math
import zlib
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from devices.errors import DecodeError
from devices.mqtt_common import Decoded, finish, number, optional_time, parse_json_object
from devices.readings import Measurement

__all__ = ["decode_tasmota", "encode_tasmota", "tasmota_time"]

_TASMOTA_KEYS: Final[dict[str, tuple[str, str]]] = {
    "Temperature": ("temperature", "degC"),
    "Humidity": ("humidity", "%RH"),
    "Pressure": ("pressure", "hPa"),
    "Battery": ("battery", "%"),  # BLE sensors (MI32: LYWSD03, LYWSD02, ...)
}
_PRESSURE_TO_HPA: Final[dict[str, float]] = {"hPa": 1.0, "mbar": 1.0, "mmHg": 1.333224, "inHg": 33.863886}
_TASMOTA_SENSOR_LEAVES: Final = frozenset({"SENSOR", "STATUS10"})


def decode_tasmota(topic: str, payload: bytes) -> list[Measurement]:
    """Measurements of one Tasmota ``tele/<topic>/SENSOR`` message (see the module docstring)."""
    if topic.rsplit("/", 1)[-1] not in _TASMOTA_SENSOR_LEAVES:
        return []
    data = parse_json_object(payload)
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
    out = Decoded()
    time = optional_time(out, data.get("Time"), "Time", 1.0)
    for block_name, block in data.items():
        if isinstance(block, dict):
            _tasmota_block(out, block_name, block, unit, pressure_factor, time)
    return finish(out)


def _tasmota_block(
    out: Decoded, name: str, block: dict[str, Any], unit: str, pressure_factor: float, time: datetime | None
) -> None:
    channel = name
    sensor_id = block.get("Id")
    if isinstance(sensor_id, str) and sensor_id:
        # DS18B20-1/-2 numbering follows bus enumeration and may change; the 1-Wire id does not.
        channel = f"{name.split('-', 1)[0]}:{sensor_id}"
    for key, (quantity, q_unit) in _TASMOTA_KEYS.items():
        raw = block.get(key)
        if raw is not None:
            where = f"{name}.{key}"
            out.take(partial(_value, where, quantity, q_unit, raw, unit, pressure_factor, time, channel))


def _value(
    where: str,
    quantity: str,
    q_unit: str,
    raw: Any,
    unit: str,
    pressure_factor: float,
    time: datetime | None,
    channel: str,
) -> Measurement:
    if (quantity == "temperature" and unit == "F") or (quantity == "pressure" and pressure_factor != 1):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise DecodeError(f"{where}: expected a number, got {raw!r}")
        raw = round((raw - 32.0) * 5.0 / 9.0 if quantity == "temperature" else raw * pressure_factor, 3)
    return Measurement(quantity, number(quantity, raw, where), q_unit, time, channel)


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
