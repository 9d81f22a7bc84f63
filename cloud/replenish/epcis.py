"""Observations and movements as GS1 EPCIS 2.0 JSON-LD (an ``EPCISQueryDocument`` of ObjectEvents).

Mapping (CBV 2.0 short names, which the EPCIS 2.0 JSON-LD context expands to the CBV URIs):

* a tag observation -> ``OBSERVE``, bizStep ``cycle_counting`` (continuous RFID counting),
  disposition ``active``, readPoint and bizLocation = the observed location;
* a movement from outside the site -> bizStep ``receiving``, disposition ``in_progress``, bizLocation
  = the destination; a movement to outside -> ``shipping`` / ``in_transit`` (readPoint = the location
  it left, no bizLocation: it is no longer here); between two locations -> ``storing`` / ``active``;
  a stocktake correction or write-off -> ``stock_taking`` (disposition ``unknown`` for write-offs).

Locations are URIs ``urn:shelfsense:loc:<site>:<location>`` (the project has no GLNs yet); EPCs are
the EPC pure-identity URIs of :func:`devices.epc.decode_epc` (``urn:epc:raw:...`` for non-GS1 tags).
Each event gets a stable ``eventID`` (a name-based UUID of its ledger row), so a partner repository
that reads the same event twice can de-duplicate it. Temperature and humidity of the event's location
(readings of the zone with the location's id, at most ``SENSOR_WINDOW`` old) travel as a
``sensorElementList``.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.core import db
from devices.epc import decode_epc
from devices.errors import DecodeError

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
SENSOR_WINDOW = timedelta(minutes=15)
MAX_EVENTS = 5000
_NAMESPACE = uuid.UUID("6f1c3c52-1b7e-4f0c-9b4a-5e9e5d1d7a01")  # ShelfSense EPCIS events
# Our sensor quantities -> (EPCIS measurement type, UN/CEFACT unit code).
MEASUREMENTS = {"temperature": ("Temperature", "CEL"), "humidity": ("RelativeHumidity", "P1")}


def location_uri(site_id: str, location: str) -> str:
    return f"urn:shelfsense:loc:{site_id}:{location}"


def epc_uri(epc_hex: str) -> str:
    try:
        return decode_epc(epc_hex).uri
    except DecodeError:
        return f"urn:shelfsense:tag:{epc_hex}"


def _time(value: datetime) -> str:
    return db.utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _Reading:
    time: datetime
    sensor_id: str
    quantity: str
    value: float


class SensorIndex:
    """Readings per zone sorted by time, to find the latest one before an event."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str, float, datetime]]) -> None:
        by_zone: dict[tuple[str, str], list[_Reading]] = {}
        for site, zone, sensor, quantity, value, at in rows:
            by_zone.setdefault((site, zone), []).append(_Reading(db.utc(at), sensor, quantity, value))
        self._zones = {k: sorted(v, key=lambda r: r.time) for k, v in by_zone.items()}
        self._times = {k: [r.time for r in v] for k, v in self._zones.items()}

    def latest(self, site: str, zone: str, at: datetime) -> list[_Reading]:
        """The newest reading per (sensor, quantity) within ``SENSOR_WINDOW`` before ``at``."""
        key = (site, zone)
        if key not in self._zones:
            return []
        at = db.utc(at)
        readings = self._zones[key]
        hi = bisect.bisect_right(self._times[key], at)
        lo = bisect.bisect_left(self._times[key], at - SENSOR_WINDOW)
        newest: dict[tuple[str, str], _Reading] = {}
        for reading in readings[lo:hi]:
            newest[(reading.sensor_id, reading.quantity)] = reading
        return list(newest.values())


def sensor_elements(readings: Sequence[_Reading]) -> list[dict[str, Any]]:
    by_sensor: dict[str, list[_Reading]] = {}
    for r in readings:
        by_sensor.setdefault(r.sensor_id, []).append(r)
    elements = []
    for sensor, rs in sorted(by_sensor.items()):
        reports = [
            {
                "type": MEASUREMENTS[r.quantity][0],
                "value": r.value,
                "uom": MEASUREMENTS[r.quantity][1],
                "time": _time(r.time),
            }
            for r in rs
        ]
        elements.append(
            {
                "sensorMetadata": {
                    "time": _time(max(r.time for r in rs)),
                    "deviceID": f"urn:shelfsense:sensor:{sensor}",
                },
                "sensorReport": reports,
            }
        )
    return elements


def _event(
    ident: str,
    at: datetime,
    epc: str,
    biz_step: str,
    disposition: str,
    read_point: str | None,
    biz_location: str | None,
    sensors: list[dict[str, Any]],
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:{uuid.uuid5(_NAMESPACE, ident)}",
        "eventTime": _time(at),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [epc_uri(epc)],
        "action": "OBSERVE",
        "bizStep": biz_step,
        "disposition": disposition,
    }
    if read_point is not None:
        event["readPoint"] = {"id": read_point}
    if biz_location is not None:
        event["bizLocation"] = {"id": biz_location}
    if sensors:
        event["sensorElementList"] = sensors
    return event


def movement_step(from_location: str | None, to_location: str | None, reason: str) -> tuple[str, str]:
    """(bizStep, disposition) of a movement."""
    if reason in ("stocktake", "adjustment"):
        return "stock_taking", ("unknown" if to_location is None else "active")
    if from_location is None:
        return "receiving", "in_progress"
    if to_location is None:
        return "shipping", "in_transit"
    return "storing", "active"


async def _sensor_index(conn: AsyncConnection, since: datetime | None, until: datetime | None) -> SensorIndex:
    r = db.sensor_readings
    query = select(r.c.site_id, r.c.zone, r.c.sensor_id, r.c.quantity, r.c.value, r.c.time).where(
        r.c.zone.is_not(None), r.c.quantity.in_(list(MEASUREMENTS))
    )
    if since is not None:
        query = query.where(r.c.time >= since - SENSOR_WINDOW)
    if until is not None:
        query = query.where(r.c.time < until)
    return SensorIndex((await conn.execute(query)).all())


async def query_events(
    conn: AsyncConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    epc: str | None = None,
    limit: int = MAX_EVENTS,
) -> list[dict[str, Any]]:
    """ObjectEvents of observations and movements in ``[since, until)``, oldest first."""
    o, m = db.tag_observations, db.stock_movements
    obs_q = select(o.c.id, o.c.site_id, o.c.epc, o.c.reader, o.c.first_seen, o.c.location).order_by(
        o.c.first_seen, o.c.id
    )
    mov_q = select(
        m.c.id, m.c.site_id, m.c.epc, m.c.from_location, m.c.to_location, m.c.reason, m.c.at
    ).order_by(m.c.at, m.c.id)
    if since is not None:
        obs_q, mov_q = obs_q.where(o.c.first_seen >= since), mov_q.where(m.c.at >= since)
    if until is not None:
        obs_q, mov_q = obs_q.where(o.c.first_seen < until), mov_q.where(m.c.at < until)
    if epc is not None:
        obs_q, mov_q = obs_q.where(o.c.epc == epc.upper()), mov_q.where(m.c.epc == epc.upper())
    observations = (await conn.execute(obs_q.limit(limit))).all()
    movements = (await conn.execute(mov_q.limit(limit))).all()
    sensors = await _sensor_index(conn, since, until)
    timed: list[tuple[datetime, str, dict[str, Any]]] = []
    for ident, site, tag, reader, at, location in observations:
        here = location_uri(site, location) if location else f"urn:shelfsense:reader:{site}:{reader}"
        readings = sensors.latest(site, location, at) if location else []
        event = _event(
            f"obs:{ident}",
            at,
            tag,
            "cycle_counting",
            "active",
            here,
            here if location else None,
            sensor_elements(readings),
        )
        timed.append((db.utc(at), f"o{ident:020d}", event))
    for ident, site, tag, src, dst, reason, at in movements:
        step, disposition = movement_step(src, dst, reason)
        place = dst or src
        readings = sensors.latest(site, place, at) if place else []
        event = _event(
            f"mov:{ident}",
            at,
            tag,
            step,
            disposition,
            location_uri(site, place) if place else None,
            location_uri(site, dst) if dst else None,
            sensor_elements(readings),
        )
        timed.append((db.utc(at), f"m{ident:020d}", event))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [event for _, _, event in timed[:limit]]


def query_document(events: Sequence[Mapping[str, Any]], now: datetime | None = None) -> dict[str, Any]:
    """The EPCIS 2.0 ``EPCISQueryDocument`` carrying ``events``."""
    created = now or datetime.now(UTC)
    return {
        "@context": [CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": _time(created),
        "epcisBody": {
            "queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": list(events)}}
        },
    }


__all__ = [
    "CONTEXT",
    "MEASUREMENTS",
    "SensorIndex",
    "epc_uri",
    "location_uri",
    "movement_step",
    "query_document",
    "query_events",
]
