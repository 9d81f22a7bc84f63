"""Pure reading of a captured EPCIS 2.0 document (already valid per the JSON Schema) into intents.

What becomes what (CBV 2.0 vocabulary):

* ObjectEvent ``ADD``/``OBSERVE`` with a bizLocation: each EPC moves there -- except bizStep
  ``cycle_counting``, which is a count, not a move: it becomes a tag observation at the place.
  With only a readPoint (no business location) it is a sighting, also a tag observation.
* ObjectEvent ``DELETE``, or no bizLocation and a bizStep / disposition saying the goods left
  (``shipping``, ``departing``, ``in_transit``, ``destroyed``, ...): each EPC leaves the site of the
  readPoint.
* AggregationEvent: the same rules for the parent (when it is an EPC) and the ``childEPCs``.
* ``sensorElementList`` (any event): Temperature / RelativeHumidity reports become sensor readings
  of the place's zone (zone = location id), which is what a lot's history is computed from.
* Transformation, Association and Transaction events, EPC classes / quantities, other measurement
  types: counted as skipped, nothing written.

A place is the bizLocation, else the readPoint, resolved by the caller (SGLN -> location GLN).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shelfsense.contract import IDENT_PATTERN

_IDENT = re.compile(IDENT_PATTERN)
LEAVING_STEPS = frozenset({"shipping", "departing", "destroying", "decommissioning", "retail_selling"})
LEAVING_DISPOSITIONS = frozenset(
    {"in_transit", "destroyed", "disposed", "dispensed", "retail_sold", "stolen", "inactive"}
)
COUNTING_STEPS = frozenset({"cycle_counting"})
# EPCIS measurement type -> (our quantity, {UN/CEFACT unit: converter to our unit})
_MEASURES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "Temperature": (
        "temperature",
        "degC",
        {"CEL": lambda v: v, "FAH": lambda v: (v - 32.0) * 5.0 / 9.0, "KEL": lambda v: v - 273.15},
    ),
    "RelativeHumidity": ("humidity", "%RH", {"P1": lambda v: v}),
}
_PLAUSIBLE = {"temperature": (-90.0, 150.0), "humidity": (0.0, 100.0)}
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
OWN_SENSOR_PREFIX = "urn:shelfsense:sensor:"


class CaptureProblem(ValueError):
    """One thing wrong with an event; the message names it (``eventList[3].eventTime: ...``)."""


@dataclass(frozen=True, slots=True)
class Reading:
    sensor_id: str
    quantity: str
    unit: str
    value: float
    time: datetime


@dataclass(slots=True)
class Intent:
    """What one captured event asks for, before its place is resolved."""

    index: int
    key: str  # eventID, or a hash of the event when it has none
    event_type: str
    time: datetime
    place_uri: str | None  # bizLocation, else readPoint
    leaves: bool  # the EPCs left the site (no destination)
    counting: bool  # a count: observations, not movements
    epcs: list[str] = field(default_factory=list)  # URIs as given
    readings: list[Reading] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def parse_time(text: Any, where: str, now: datetime) -> datetime:
    if not isinstance(text, str):
        raise CaptureProblem(f"{where}: not a date-time")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CaptureProblem(f"{where}: {text!r} is not an xsd:dateTime") from exc
    if value.tzinfo is None:
        raise CaptureProblem(f"{where}: {text!r} has no time zone offset")
    value = value.astimezone(UTC)
    if not EARLIEST <= value <= now + FUTURE_SLACK:
        raise CaptureProblem(f"{where}: {text!r} is implausible (before 2000 or in the future)")
    return value


def event_key(event: Mapping[str, Any]) -> str:
    """The eventID, or a SHA-256 of the canonical JSON of the event (EPCIS 2.0 recommends an
    eventID; an event without one is still captured once)."""
    ident = event.get("eventID")
    if isinstance(ident, str) and ident:
        return ident[:255]
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _sensor_id(metadata: Mapping[str, Any], report: Mapping[str, Any], fallback: str) -> str:
    device = report.get("deviceID") or metadata.get("deviceID")
    if not isinstance(device, str) or not device:
        return fallback
    if device.startswith(OWN_SENSOR_PREFIX):
        device = device[len(OWN_SENSOR_PREFIX) :]
    if _IDENT.fullmatch(device):
        return device
    cleaned = re.sub(r"[^A-Za-z0-9_.:\-]", "_", device).lstrip("_.:-")[:128]
    return cleaned or fallback


def _readings(
    event: Mapping[str, Any], where: str, time: datetime, now: datetime
) -> tuple[list[Reading], list[str]]:
    readings: list[Reading] = []
    skipped: list[str] = []
    for e_index, element in enumerate(event.get("sensorElementList") or []):
        metadata = element.get("sensorMetadata") or {}
        base_time = metadata.get("time")
        for r_index, report in enumerate(element.get("sensorReport") or []):
            here = f"{where}.sensorElementList[{e_index}].sensorReport[{r_index}]"
            kind = report.get("type")
            measure = _MEASURES.get(kind) if isinstance(kind, str) else None
            value = report.get("value")
            if measure is None or not isinstance(value, (int, float)) or isinstance(value, bool):
                skipped.append(f"{here}: {kind} is not a temperature or humidity value")
                continue
            quantity, unit, converters = measure
            convert = converters.get(report.get("uom") or next(iter(converters)))
            if convert is None:
                skipped.append(f"{here}: unit {report.get('uom')!r} of {kind} is not supported")
                continue
            converted = float(convert(float(value)))
            low, high = _PLAUSIBLE[quantity]
            if not low <= converted <= high:
                raise CaptureProblem(f"{here}.value: {value} is not a plausible {kind}")
            stamp = report.get("time") or base_time
            at = parse_time(stamp, f"{here}.time", now) if stamp is not None else time
            readings.append(Reading(_sensor_id(metadata, report, "epcis"), quantity, unit, converted, at))
    return readings, skipped


def intents(document: Mapping[str, Any], now: datetime) -> list[Intent]:
    """One :class:`Intent` per event of ``document``; raises :class:`CaptureProblem`."""
    events: Sequence[Mapping[str, Any]] = document["epcisBody"]["eventList"]
    out = []
    for index, event in enumerate(events):
        where = f"eventList[{index}]"
        kind = event["type"]
        time = parse_time(event.get("eventTime"), f"{where}.eventTime", now)
        biz_location = (event.get("bizLocation") or {}).get("id")
        read_point = (event.get("readPoint") or {}).get("id")
        action = event.get("action")
        step = _short(event.get("bizStep"))
        disposition = _short(event.get("disposition"))
        intent = Intent(
            index=index,
            key=event_key(event),
            event_type=kind,
            time=time,
            place_uri=biz_location or read_point,
            leaves=_leaves(kind, action, step, disposition, has_location=biz_location is not None),
            counting=step in COUNTING_STEPS,
        )
        # Seen at a readPoint with no business location given: a sighting, not a move.
        intent.counting |= biz_location is None and not intent.leaves
        if kind == "ObjectEvent":
            intent.epcs = list(event.get("epcList") or [])
        elif kind == "AggregationEvent":
            parent = event.get("parentID")
            intent.epcs = [*([parent] if isinstance(parent, str) else []), *(event.get("childEPCs") or [])]
        else:
            intent.skipped.append(f"{where}: {kind} is not recorded")
        for name in ("quantityList", "childQuantityList"):
            if event.get(name):
                intent.skipped.append(f"{where}.{name}: quantities of EPC classes are not tracked")
        intent.readings, skipped = _readings(event, where, time, now)
        intent.skipped += skipped
        if intent.place_uri is None and (intent.epcs or intent.readings):
            raise CaptureProblem(f"{where}: neither bizLocation nor readPoint says where it happened")
        out.append(intent)
    return out


def _leaves(kind: str, action: Any, step: str | None, disposition: str | None, *, has_location: bool) -> bool:
    """Did the EPCs leave the site? A deleted object did; without a bizLocation, a shipping-like
    step or disposition, or a stock count that found it gone (``stock_taking``), says so."""
    if kind == "ObjectEvent" and action == "DELETE":
        return True
    if has_location:
        return False
    return step in LEAVING_STEPS or step == "stock_taking" or disposition in LEAVING_DISPOSITIONS


def _short(value: Any) -> str | None:
    """CBV short name of a bizStep / disposition given either way (``shipping`` or its URI)."""
    if not isinstance(value, str):
        return None
    for prefix in (
        "https://ref.gs1.org/cbv/BizStep-",
        "https://ref.gs1.org/cbv/Disp-",
        "urn:epcglobal:cbv:bizstep:",
        "urn:epcglobal:cbv:disp:",
    ):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


__all__ = ["CaptureProblem", "Intent", "Reading", "event_key", "intents", "parse_time"]
