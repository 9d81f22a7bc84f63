"""Observations and movements as GS1 EPCIS 2.0 JSON-LD (an ``EPCISQueryDocument`` of ObjectEvents).

Mapping (CBV 2.0 short names, which the EPCIS 2.0 JSON-LD context expands to the CBV URIs):

* a tag observation -> ``OBSERVE``, bizStep ``cycle_counting`` (continuous RFID counting),
  disposition ``active``, readPoint and bizLocation = the observed location;
* a movement from outside the site -> bizStep ``receiving``, disposition ``in_progress``, bizLocation
  = the destination; a movement to outside -> ``shipping`` / ``in_transit`` (readPoint = the location
  it left, no bizLocation: it is no longer here); between two locations -> ``storing`` / ``active``;
  a stocktake correction or write-off -> ``stock_taking`` (disposition ``unknown`` for write-offs).

A location with a GLN (master data ``gln`` / ``gcp_length`` / ``gln_extension``) is its SGLN URI
``urn:epc:id:sgln:<company prefix>.<location reference>.<extension>``; others are
``urn:shelfsense:loc:<site>:<location>``. EPCs are the EPC pure-identity URIs of
:func:`devices.epc.decode_epc` (``urn:epc:raw:...`` for non-GS1 tags).
Each event gets a stable ``eventID`` (a name-based UUID of its ledger row), so a partner repository
that reads the same event twice can de-duplicate it. Temperature and humidity of the event's location
(readings of the zone with the location's id, at most ``SENSOR_WINDOW`` old) travel as a
``sensorElementList``; every reading of a zone that is a location also travels in ``sensor_reporting``
ObjectEvents without EPCs (CBV 2.0), one per zone and sensor and at most ``SENSOR_EVENT_READINGS``
readings, so a partner (or a fresh ShelfSense capturing the export) has the full temperature record
of each place: that is what a lot's history is computed from.

The standard query parameters (EPCIS 2.0 §8.2.7.1: ``eventType``, ``GE_eventTime``, ``LT_eventTime``,
``EQ_bizStep``, ``EQ_bizLocation``, ``MATCH_epc``) arrive as an :class:`EventQuery`.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.epcis.uris import epc_uri, sgln_uri
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
SENSOR_WINDOW = timedelta(minutes=15)
MAX_EVENTS = 5000
SENSOR_EVENT_READINGS = 200
_NAMESPACE = uuid.UUID("6f1c3c52-1b7e-4f0c-9b4a-5e9e5d1d7a01")  # ShelfSense EPCIS events
# Our sensor quantities -> (EPCIS measurement type, UN/CEFACT unit code).
MEASUREMENTS = {"temperature": ("Temperature", "CEL"), "humidity": ("RelativeHumidity", "P1")}


def location_uri(site_id: str, location: str) -> str:
    return f"urn:shelfsense:loc:{site_id}:{location}"


async def location_uris(conn: AsyncConnection) -> dict[tuple[str, str], str]:
    """(site, location) -> SGLN URI, for every location with a GLN."""
    t = masterdata_db.locations
    rows = await conn.execute(
        select(t.c.site_id, t.c.location_id, t.c.gln, t.c.gcp_length, t.c.gln_extension).where(
            t.c.gln.is_not(None), t.c.gcp_length.is_not(None)
        )
    )
    return {(site, loc): sgln_uri(gln, int(cp), ext or "0") for site, loc, gln, cp, ext in rows}


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A SimpleEventQuery's standard parameters; None / empty = no restriction."""

    since: datetime | None = None  # GE_eventTime
    until: datetime | None = None  # LT_eventTime
    epcs: frozenset[str] | None = None  # MATCH_epc, as hex candidates
    event_types: frozenset[str] = field(default_factory=frozenset)  # eventType
    biz_steps: frozenset[str] = field(default_factory=frozenset)  # EQ_bizStep
    biz_locations: frozenset[str] = field(default_factory=frozenset)  # EQ_bizLocation (URIs)
    limit: int = MAX_EVENTS

    def keeps(self, event: Mapping[str, Any]) -> bool:
        if self.event_types and event["type"] not in self.event_types:
            return False
        if self.biz_steps and event.get("bizStep") not in self.biz_steps:
            return False
        return not self.biz_locations or event.get("bizLocation", {}).get("id") in self.biz_locations


def _time(value: datetime, *, full: bool = False) -> str:
    """xsd:dateTime in UTC; milliseconds (EPCIS' usual precision) unless ``full``."""
    spec = "microseconds" if full else "milliseconds"
    return db.utc(value).isoformat(timespec=spec).replace("+00:00", "Z")


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
    """One sensorElement per sensor; each reading a sensorReport with its own ``time`` (full
    precision: a capture stores the very instant, one reading per sensor and time)."""
    by_sensor: dict[str, list[_Reading]] = {}
    for r in readings:
        by_sensor.setdefault(r.sensor_id, []).append(r)
    elements = []
    for sensor, rs in sorted(by_sensor.items()):
        reports = [
            {
                "type": MEASUREMENTS[r.quantity][0],
                "value": float(r.value),
                "uom": MEASUREMENTS[r.quantity][1],
                "time": _time(r.time, full=True),
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
    epc: str | None,
    biz_step: str,
    disposition: str | None,
    read_point: str | None,
    biz_location: str | None,
    sensors: list[dict[str, Any]],
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:{uuid.uuid5(_NAMESPACE, ident)}",
        "eventTime": _time(at),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [epc_uri(epc)] if epc is not None else [],
        "action": "OBSERVE",
        "bizStep": biz_step,
    }
    if disposition is not None:
        event["disposition"] = disposition
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
    r = sensors_db.sensor_readings
    query = select(r.c.site_id, r.c.zone, r.c.sensor_id, r.c.quantity, r.c.value, r.c.time).where(
        r.c.zone.is_not(None), r.c.quantity.in_(list(MEASUREMENTS))
    )
    if since is not None:
        query = query.where(r.c.time >= since - SENSOR_WINDOW)
    if until is not None:
        query = query.where(r.c.time < until)
    return SensorIndex((await conn.execute(query)).all())


SCAN_LIMIT = 50_000  # ledger rows read per query before the filters that work on the events


def _sensor_events(
    rows: Sequence[tuple[int, str, str, str, str, float, datetime]], place: Any
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """``sensor_reporting`` ObjectEvents without EPCs: a zone's readings, per sensor, in chunks."""
    by_key: dict[tuple[str, str, str], list[tuple[int, _Reading]]] = {}
    for ident, site, zone, sensor, quantity, value, at in rows:
        by_key.setdefault((site, zone, sensor), []).append(
            (ident, _Reading(db.utc(at), sensor, quantity, value))
        )
    out = []
    for (site, zone, _sensor), items in by_key.items():
        items.sort(key=lambda item: (item[1].time, item[0]))
        for start in range(0, len(items), SENSOR_EVENT_READINGS):
            chunk = items[start : start + SENSOR_EVENT_READINGS]
            last = chunk[-1][1].time
            here = place(site, zone)
            event = _event(
                f"sensors:{chunk[0][0]}:{chunk[-1][0]}",
                last,
                None,
                "sensor_reporting",
                None,
                here,
                here,
                sensor_elements([reading for _, reading in chunk]),
            )
            out.append((last, f"s{chunk[-1][0]:020d}", event))
    return out


async def query_events(
    conn: AsyncConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    epc: str | None = None,
    limit: int = MAX_EVENTS,
    *,
    query: EventQuery | None = None,
) -> list[dict[str, Any]]:
    """ObjectEvents of observations, movements and zone readings in ``[since, until)``, oldest
    first, restricted by ``query`` (``since``/``until``/``epc``/``limit`` are its shorthands)."""
    if query is None:
        epcs = frozenset({epc.upper()}) if epc is not None else None
        query = EventQuery(since=since, until=until, epcs=epcs, limit=limit)
    if query.event_types and "ObjectEvent" not in query.event_types:
        return []  # everything we record is an ObjectEvent
    since, until = query.since, query.until
    o, m, r = stock_db.tag_observations, stock_db.stock_movements, sensors_db.sensor_readings
    obs_q = select(o.c.id, o.c.site_id, o.c.epc, o.c.reader, o.c.first_seen, o.c.location).order_by(
        o.c.first_seen, o.c.id
    )
    mov_q = select(
        m.c.id, m.c.site_id, m.c.epc, m.c.from_location, m.c.to_location, m.c.reason, m.c.at
    ).order_by(m.c.at, m.c.id)
    zones = select(masterdata_db.locations.c.location_id)
    read_q = (
        select(r.c.id, r.c.site_id, r.c.zone, r.c.sensor_id, r.c.quantity, r.c.value, r.c.time)
        .where(r.c.zone.in_(zones), r.c.quantity.in_(list(MEASUREMENTS)))
        .order_by(r.c.time, r.c.id)
    )
    if since is not None:
        obs_q, mov_q = obs_q.where(o.c.first_seen >= since), mov_q.where(m.c.at >= since)
        read_q = read_q.where(r.c.time >= since)
    if until is not None:
        obs_q, mov_q = obs_q.where(o.c.first_seen < until), mov_q.where(m.c.at < until)
        read_q = read_q.where(r.c.time < until)
    if query.epcs is not None:
        wanted = sorted(query.epcs)
        obs_q, mov_q = obs_q.where(o.c.epc.in_(wanted)), mov_q.where(m.c.epc.in_(wanted))
    observations = (await conn.execute(obs_q.limit(SCAN_LIMIT))).all()
    movements = (await conn.execute(mov_q.limit(SCAN_LIMIT))).all()
    sensors = await _sensor_index(conn, since, until)
    sglns = await location_uris(conn)

    def place(site: str, location: str) -> str:
        return sglns.get((site, location)) or location_uri(site, location)

    timed: list[tuple[datetime, str, dict[str, Any]]] = []
    for ident, site, tag, reader, at, location in observations:
        here = place(site, location) if location else f"urn:shelfsense:reader:{site}:{reader}"
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
        where = dst or src
        readings = sensors.latest(site, where, at) if where else []
        event = _event(
            f"mov:{ident}",
            at,
            tag,
            step,
            disposition,
            place(site, where) if where else None,
            place(site, dst) if dst else None,
            sensor_elements(readings),
        )
        timed.append((db.utc(at), f"m{ident:020d}", event))
    if query.epcs is None:  # sensor-only events carry no EPC: MATCH_epc leaves them out
        timed += _sensor_events((await conn.execute(read_q.limit(SCAN_LIMIT))).all(), place)
    timed.sort(key=lambda t: (t[0], t[1]))
    return [event for _, _, event in timed if query.keeps(event)][: query.limit]


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
    "EventQuery",
    "SensorIndex",
    "epc_uri",
    "location_uri",
    "location_uris",
    "movement_step",
    "query_document",
    "query_events",
]
