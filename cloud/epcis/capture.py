"""EPCIS 2.0 capture: a partner's document -> movements, observations and readings (one transaction).

Steps: the body is checked against GS1's JSON Schema (:mod:`cloud.epcis.schema`), read into intents
(:mod:`cloud.epcis.parse`), every place (bizLocation, else readPoint) resolved to a site and a
location -- an SGLN URI through the locations' GLNs, our own ``urn:shelfsense:loc:<site>:<loc>``
through the site table -- and every site checked against what the caller may write. Anything wrong
refuses the whole document with every problem named (nothing is written); a document that is fine
is stored in one write transaction.

Idempotent: each event is stored once per ``eventID`` (``epcis_events``); capturing the same
document again changes nothing and reports the events as duplicates. The rows an event projects
carry ``edge_id = "epcis"`` and ``seq`` = the event's row id, so they can be traced back.

EPC URIs name their tag without the filter value of its binary encoding: an EPC the site already
knows (registered item or book entry) is matched in any filter; otherwise the TDS default
encoding is stored (see :mod:`cloud.epcis.uris`). One reading per (sensor, quantity, time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.core.errors import CloudError
from cloud.epcis import tables as epcis_db
from cloud.epcis.parse import CaptureProblem, Intent, intents
from cloud.epcis.schema import schema_errors
from cloud.epcis.uris import epc_hex_candidates, parse_sgln, preferred_hex
from cloud.ingest.projections import insert_history, upsert_latest
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db
from cloud.users import tables as users_db
from shelfsense.contract import Event, SensorReading, SequencedEvent, StockMovement, TagObservation

EPCIS_EDGE_ID = "epcis"
OWN_LOCATION_PREFIX = "urn:shelfsense:loc:"
MAX_EVENTS = 5000
MAX_ROWS = 100_000  # EPCs + readings per document


class CaptureRefused(CloudError):
    """The document was refused; ``problems`` says why (nothing was written)."""

    status_code = 400
    code = "invalid_epcis"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems[:5]) + (" ..." if len(self.problems) > 5 else ""))

    def body(self) -> dict[str, Any]:
        return {**super().body(), "problems": self.problems}


class CaptureForbidden(CloudError):
    """The document writes to a site the caller may not write."""

    status_code = 403
    code = "forbidden"


@dataclass(frozen=True, slots=True)
class Place:
    site_id: str
    location: str


@dataclass(slots=True)
class CaptureResult:
    events: int = 0
    duplicates: int = 0
    movements: int = 0
    observations: int = 0
    readings: int = 0
    skipped: list[str] = field(default_factory=list)


async def resolve_places(conn: AsyncConnection, uris: Iterable[str]) -> dict[str, Place]:
    """Place of every URI that names a known location (SGLN) or a known site (our own URIs)."""
    wanted = set(uris)
    sglns = {uri: parsed for uri in wanted if (parsed := parse_sgln(uri)) is not None}
    places: dict[str, Place] = {}
    if sglns:
        t = masterdata_db.locations
        rows = await conn.execute(
            select(t.c.gln, t.c.gln_extension, t.c.site_id, t.c.location_id).where(
                t.c.gln.in_({gln for gln, _ in sglns.values()})
            )
        )
        by_key = {(gln, ext or "0"): Place(site, loc) for gln, ext, site, loc in rows}
        places.update({uri: by_key[key] for uri, key in sglns.items() if key in by_key})
    own = {}
    for uri in wanted:
        if uri.startswith(OWN_LOCATION_PREFIX):
            site, sep, location = uri[len(OWN_LOCATION_PREFIX) :].partition(":")
            if sep and site and location:
                own[uri] = Place(site, location)
    if own:
        sites = set(
            (
                await conn.execute(
                    select(users_db.sites.c.site_id).where(
                        users_db.sites.c.site_id.in_({p.site_id for p in own.values()})
                    )
                )
            ).scalars()
        )
        places.update({uri: place for uri, place in own.items() if place.site_id in sites})
    return places


def check_document(document: Any, now: datetime) -> list[Intent]:
    """Schema, document type and per-event checks; raises :class:`CaptureRefused`."""
    errors = schema_errors(document)
    if errors:
        raise CaptureRefused([f"EPCIS 2.0 JSON Schema: {e}" for e in errors])
    if document.get("type") != "EPCISDocument":
        raise CaptureRefused([f"type: capture takes an EPCISDocument, got {document.get('type')!r}"])
    events = document["epcisBody"].get("eventList") or []
    if len(events) > MAX_EVENTS:
        raise CaptureRefused([f"epcisBody.eventList: at most {MAX_EVENTS} events per capture"])
    try:
        found = intents(document, now)
    except CaptureProblem as exc:
        raise CaptureRefused([str(exc)]) from exc
    if sum(len(i.epcs) + len(i.readings) for i in found) > MAX_ROWS:
        raise CaptureRefused([f"at most {MAX_ROWS} EPCs and readings per capture"])
    return found


async def capture(
    engine: AsyncEngine,
    document: Any,
    user: str,
    may_write: Callable[[str], bool],
    now: datetime | None = None,
) -> CaptureResult:
    """Validate and store ``document``; see the module docstring."""
    now = db.utc(now) if now is not None else db.utcnow()
    found = check_document(document, now)
    result = CaptureResult(skipped=[s for i in found for s in i.skipped])
    async with db.write_transaction(engine) as conn:
        places = await resolve_places(conn, {i.place_uri for i in found if i.place_uri})
        problems = [
            f"eventList[{i.index}]: {i.place_uri} is not a known location (register its GLN)"
            for i in found
            if i.place_uri is not None and i.place_uri not in places and (i.epcs or i.readings)
        ]
        if problems:
            raise CaptureRefused(problems)
        denied = sorted(
            {places[i.place_uri].site_id for i in found if i.place_uri in places}
            - _allowed(places, may_write)
        )
        if denied:
            raise CaptureForbidden(f"{user} may not write to site(s) {', '.join(denied)}")
        e = epcis_db.epcis_events
        keys = [i.key for i in found]
        seen = set((await conn.execute(select(e.c.event_key).where(e.c.event_key.in_(keys)))).scalars())
        fresh: list[Intent] = []
        for intent in found:
            if intent.key in seen:
                result.duplicates += 1
            else:
                seen.add(intent.key)  # the same event twice in one document counts once
                fresh.append(intent)
        writer = _Writer(conn, result)
        for intent in fresh:
            place = places.get(intent.place_uri or "")
            site = place.site_id if place is not None else ""
            ident = (
                await conn.execute(
                    e.insert()
                    .values(
                        event_key=intent.key,
                        site_id=site or "-",
                        event_type=intent.event_type,
                        event_time=intent.time,
                        captured_at=now,
                        captured_by=user,
                    )
                    .returning(e.c.id)
                )
            ).scalar_one()
            if place is not None:
                await writer.apply(int(ident), intent, place)
        result.events = len(fresh)
    return result


def _allowed(places: Mapping[str, Place], may_write: Callable[[str], bool]) -> set[str]:
    return {p.site_id for p in places.values() if may_write(p.site_id)}


class _Writer:
    """Projects intents through the same projection code as edge batches (one site at a time)."""

    def __init__(self, conn: AsyncConnection, result: CaptureResult) -> None:
        self.conn = conn
        self.result = result
        self._book: dict[str, dict[str, tuple[str | None, bool]]] = {}  # site -> epc -> (loc, present)
        self._known: dict[str, set[str]] = {}

    async def _site_state(self, site: str, candidates: Sequence[str]) -> None:
        if site not in self._book:
            self._book[site] = {}
            self._known[site] = set()
        s, i = stock_db.stock_items, masterdata_db.items
        missing = [c for c in candidates if c not in self._known[site]]
        if not missing:
            return
        rows = await self.conn.execute(
            select(s.c.epc, s.c.location, s.c.present).where(s.c.site_id == site, s.c.epc.in_(missing))
        )
        for epc, location, present in rows:
            self._book[site][epc] = (location, bool(present))
            self._known[site].add(epc)
        self._known[site].update(
            (await self.conn.execute(select(i.c.epc).where(i.c.epc.in_(missing)))).scalars()
        )

    async def _epcs(self, site: str, uris: Sequence[str]) -> list[str]:
        candidates = {uri: epc_hex_candidates(uri) for uri in uris if isinstance(uri, str)}
        await self._site_state(site, [c for cs in candidates.values() for c in cs])
        out = []
        for uri, cs in candidates.items():
            chosen = preferred_hex(cs, self._known[site])
            if chosen is None:
                self.result.skipped.append(f"{uri}: not an EPC this cloud can store")
            else:
                out.append(chosen)
        return out

    async def apply(self, seq: int, intent: Intent, place: Place) -> None:
        site = place.site_id
        events: list[Event] = []
        for epc in await self._epcs(site, intent.epcs):
            book = self._book[site].get(epc)
            if intent.counting and not intent.leaves:
                events.append(
                    TagObservation(
                        epc=epc,
                        reader=EPCIS_EDGE_ID,
                        antenna=0,
                        first_seen=intent.time,
                        last_seen=intent.time,
                        count=1,
                        location=place.location,
                    )
                )
                self.result.observations += 1
                continue
            target = None if intent.leaves else place.location
            if book is not None and book == (target, target is not None):
                continue  # already there: not a movement
            if book is None and target is None:
                continue  # never here, so it cannot leave
            source = book[0] if book is not None and book[1] else None
            events.append(
                StockMovement(
                    epc=epc, from_location=source, to_location=target, reason="manual", at=intent.time
                )
            )
            self._book[site][epc] = (target, target is not None)
            self._known[site].add(epc)
            self.result.movements += 1
        events += await self._new_readings(site, place.location, intent)
        if events:
            items = [SequencedEvent(seq=seq, event=ev) for ev in events]
            await insert_history(self.conn, site, EPCIS_EDGE_ID, items)
            await upsert_latest(self.conn, site, EPCIS_EDGE_ID, items)

    async def _new_readings(self, site: str, zone: str, intent: Intent) -> list[Event]:
        """Readings not stored yet (one per sensor, quantity and time)."""
        if not intent.readings:
            return []
        r = sensors_db.sensor_readings
        keys = {(x.sensor_id, x.quantity, db.utc(x.time)) for x in intent.readings}
        existing = {
            (sensor, quantity, db.utc(time))
            for sensor, quantity, time in await self.conn.execute(
                select(r.c.sensor_id, r.c.quantity, r.c.time).where(
                    r.c.site_id == site,
                    tuple_(r.c.sensor_id, r.c.quantity).in_({(k[0], k[1]) for k in keys}),
                    r.c.time.in_({k[2] for k in keys}),
                )
            )
        }
        out: list[Event] = []
        for x in intent.readings:
            key = (x.sensor_id, x.quantity, db.utc(x.time))
            if key in existing:
                continue
            existing.add(key)
            fields = {"quantity": x.quantity, "unit": x.unit, "value": x.value, "time": x.time}
            out.append(SensorReading.model_validate({"sensor_id": x.sensor_id, "zone": zone, **fields}))
        self.result.readings += len(out)
        return out


__all__ = [
    "EPCIS_EDGE_ID",
    "CaptureForbidden",
    "CaptureRefused",
    "CaptureResult",
    "capture",
    "resolve_places",
]
