"""Shelly payloads (sans-I/O): Gen2/Gen3 JSON-RPC notifications and Gen1 plain-value topics.

* Gen2 / Gen3 (Plus H&T, H&T Gen3, Plus Add-on): ``<id>/events/rpc`` ``NotifyStatus`` /
  ``NotifyFullStatus`` with ``temperature:N`` ``{tC, tF}``, ``humidity:N`` ``{rh}``,
  ``devicepower:0`` ``{battery: {V, percent}}``, and the ``<id>/status/temperature:0`` form.
* Gen1 (H&T, Flood, Shelly 1/1PM with the temperature add-on): ``shellies/<id>/sensor/temperature``,
  ``.../sensor/humidity``, ``.../sensor/battery`` and ``shellies/<id>/ext_temperature/<n>``,
  ``.../ext_humidity/<n>``, each the value as plain text (Shelly Gen1 API docs, "MQTT" sections
  of Shelly H&T and Shelly 1). Gen1 has no time: receipt time. Temperatures are taken as degC,
  the Gen1 default (an H&T set to Fahrenheit must be set back). Other Gen1 topics (``online``,
  ``announce``, ``info``, ``sensor/error``, ``sensor/act_reasons``) decode to ``[]``.

A component that reports ``errors`` or an implausible value is counted in ``rejected``; the other
components of the same notification are kept.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial
from typing import Any, Final

from devices.errors import DecodeError
from devices.mqtt_common import Decoded, epoch_time, finish, number, parse_json_object, text_number
from devices.readings import Measurement

__all__ = ["decode_shelly", "encode_shelly_notify_status", "encode_shelly_temperature_status"]

_SHELLY_COMPONENTS: Final = frozenset({"temperature", "humidity", "devicepower"})
_GEN1_SENSORS: Final = {"temperature": "degC", "humidity": "%RH", "battery": "%"}
_GEN1_EXT: Final = {"ext_temperature": ("temperature", "degC"), "ext_humidity": ("humidity", "%RH")}


def _shelly_measurements(params: dict[str, Any], time: datetime | None) -> Decoded:
    """Measurements in the components of a NotifyStatus/NotifyFullStatus ``params`` (or one status)."""
    out = Decoded()
    for key, status in params.items():
        kind, _, cid = key.partition(":")
        if kind not in _SHELLY_COMPONENTS or not cid.isdigit():
            continue
        if not isinstance(status, dict):
            out.rejected.append(f"{key}: component status must be an object, got {type(status).__name__}")
        elif status.get("errors"):
            # e.g. ["read"] or ["out_of_range"]: the sensor itself says its value is not to be trusted.
            out.rejected.append(f"{key} reports errors {status['errors']!r}")
        else:
            out.take(partial(_shelly_component, kind, key, cid, status, time))
    return finish(out)


def _shelly_component(
    kind: str, key: str, cid: str, status: dict[str, Any], time: datetime | None
) -> Measurement | None:
    if kind == "temperature":
        if status.get("tC") is not None:
            value = number("temperature", status["tC"], f"{key}.tC")
        elif status.get("tF") is not None:
            fahrenheit = status["tF"]
            if isinstance(fahrenheit, bool) or not isinstance(fahrenheit, (int, float)):
                raise DecodeError(f"{key}.tF: expected a number, got {fahrenheit!r}")
            value = number("temperature", round((fahrenheit - 32.0) * 5.0 / 9.0, 3), f"{key}.tF")
        else:
            return None  # null: an add-on probe that is not connected
        return Measurement("temperature", value, "degC", time, cid)
    if kind == "humidity":
        if status.get("rh") is None:
            return None
        return Measurement("humidity", number("humidity", status["rh"], f"{key}.rh"), "%RH", time, cid)
    battery = status.get("battery")  # devicepower
    if not isinstance(battery, dict) or battery.get("percent") is None:
        return None
    percent = number("battery", battery["percent"], f"{key}.battery.percent")
    return Measurement("battery", percent, "%", time, cid)


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
        data = parse_json_object(payload)
        if data.get("method") not in ("NotifyStatus", "NotifyFullStatus"):
            return []
        params = data.get("params")
        if not isinstance(params, dict):
            raise DecodeError(f"{data['method']} without a params object")
        return _shelly_measurements(params, epoch_time(params.get("ts")))
    if len(parts) >= 3 and parts[-2] == "status" and parts[-1].partition(":")[0] in _SHELLY_COMPONENTS:
        return _shelly_measurements({parts[-1]: parse_json_object(payload)}, None)
    return _decode_gen1(parts, payload)


def _decode_gen1(parts: list[str], payload: bytes) -> list[Measurement]:
    """``shellies/<id>/sensor/<quantity>`` and ``shellies/<id>/ext_<quantity>/<n>`` (plain text)."""
    if len(parts) >= 3 and parts[-2] == "sensor" and parts[-1] in _GEN1_SENSORS:
        quantity = parts[-1]
        value = text_number(quantity, payload, "/".join(parts[-2:]))
        return [Measurement(quantity, value, _GEN1_SENSORS[quantity])]
    if len(parts) >= 3 and parts[-2] in _GEN1_EXT and parts[-1].isdigit():
        quantity, unit = _GEN1_EXT[parts[-2]]
        value = text_number(quantity, payload, "/".join(parts[-2:]))
        return [Measurement(quantity, value, unit, None, parts[-1])]
    return []  # <id>/online, Gen1 announce/info/sensor/error, events of other components, rpc requests


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
