"""GS1 EPCIS 2.0 REST binding, both ways (base ``/api/v1/epcis``).

* ``GET /events``: observations, movements and zone readings as an ``EPCISQueryDocument``, with the
  standard SimpleEventQuery parameters (EPCIS 2.0 §8.2.7.1) ``eventType``, ``GE_eventTime``,
  ``LT_eventTime``, ``EQ_bizStep``, ``EQ_bizLocation``, ``MATCH_epc`` (several values comma
  separated or repeated) and our older shorthands ``since`` / ``until`` / ``epc``. EPCs may be hex
  or EPC URIs.
* ``POST /capture``: an ``EPCISDocument`` (validated against GS1's JSON Schema) becomes movements,
  observations and readings (see :mod:`cloud.epcis.capture`). Operators and admins only. The
  capture is synchronous: the answer says what was stored (200), or why nothing was (400 with every
  problem, 403 for a site the caller may not write).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cloud.api.body import read_limited_body
from cloud.api.deps import DbConn, Engine, OperatorUser, SettingsDep, UserPrincipal
from cloud.api.sites import all_sites, sees
from cloud.core import db
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.epcis.capture import capture
from cloud.epcis.uris import epc_hex_candidates
from cloud.replenish.epcis import MAX_EVENTS, EventQuery, query_document, query_events

router = APIRouter(prefix="/api/v1/epcis", tags=["epcis"])
# The events of every site: users of every site only.
Viewer = [Depends(all_sites(Role.viewer))]
EVENT_TYPES = frozenset(
    {"ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"}
)


def _values(raw: list[str] | None) -> frozenset[str]:
    """Repeated and comma-separated values (the REST binding's ``a,b`` and ``?x=a&x=b``)."""
    return frozenset(v.strip() for item in raw or [] for v in item.split(",") if v.strip())


def _epcs(raw: frozenset[str]) -> frozenset[str] | None:
    if not raw:
        return None
    out: set[str] = set()
    for value in raw:
        candidates = epc_hex_candidates(value)
        if not candidates:
            raise ApiError(422, "validation_error", f"MATCH_epc: {value!r} is neither hex nor an EPC URI")
        out.update(candidates)
    return frozenset(out)


def _time(*values: datetime | None) -> datetime | None:
    given = [db.utc(v) for v in values if v is not None]
    if len(given) > 1:
        raise ApiError(422, "validation_error", "give the time bound once (GE_eventTime or since, ...)")
    return given[0] if given else None


# The envelope; each event follows the GS1 EPCIS 2.0 JSON schema (ObjectEvent, with sensorElementList
# for readings), referenced rather than copied here.
_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
    "properties": {
        "@context": {"type": "array", "items": {"type": "string"}},
        "type": {"const": "EPCISQueryDocument"},
        "schemaVersion": {"const": "2.0"},
        "creationDate": {"type": "string", "format": "date-time"},
        "epcisBody": {
            "type": "object",
            "required": ["queryResults"],
            "properties": {
                "queryResults": {
                    "type": "object",
                    "required": ["queryName", "resultsBody"],
                    "properties": {
                        "queryName": {"type": "string"},
                        "resultsBody": {
                            "type": "object",
                            "required": ["eventList"],
                            "properties": {
                                "eventList": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "eventTime"],
                                        "description": "an EPCIS 2.0 event (https://ref.gs1.org/standards/epcis/)",
                                    },
                                }
                            },
                        },
                    },
                }
            },
        },
    },
}


class LdJsonResponse(JSONResponse):
    media_type = "application/ld+json"


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An EPCIS 2.0 EPCISQueryDocument (JSON-LD)",
        "content": {"application/ld+json": {"schema": _DOCUMENT}},
    }
}


@router.get("/events", dependencies=Viewer, response_class=LdJsonResponse, responses=_RESPONSES)
async def epcis_events(
    conn: DbConn,
    since: Annotated[datetime | None, Query(description="events at or after (naive = UTC)")] = None,
    until: Annotated[datetime | None, Query(description="events before (naive = UTC)")] = None,
    epc: Annotated[str | None, Query(description="one tag, hex or EPC URI")] = None,
    ge_event_time: Annotated[datetime | None, Query(alias="GE_eventTime")] = None,
    lt_event_time: Annotated[datetime | None, Query(alias="LT_eventTime")] = None,
    event_type: Annotated[list[str] | None, Query(alias="eventType")] = None,
    eq_biz_step: Annotated[list[str] | None, Query(alias="EQ_bizStep")] = None,
    eq_biz_location: Annotated[list[str] | None, Query(alias="EQ_bizLocation")] = None,
    match_epc: Annotated[list[str] | None, Query(alias="MATCH_epc", description="hex or EPC URIs")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000,
) -> JSONResponse:
    types = _values(event_type)
    if unknown := types - EVENT_TYPES:
        raise ApiError(422, "validation_error", f"eventType: unknown {', '.join(sorted(unknown))}")
    epcs = _values(match_epc) | ({epc} if epc else set())
    query = EventQuery(
        since=_time(since, ge_event_time),
        until=_time(until, lt_event_time),
        epcs=_epcs(epcs),
        event_types=types,
        biz_steps=_values(eq_biz_step),
        biz_locations=_values(eq_biz_location),
        limit=limit,
    )
    events = await query_events(conn, query=query)
    return LdJsonResponse(query_document(events))


def _may_write(user: UserPrincipal) -> Callable[[str], bool]:
    """Which sites the caller may write: the sites the user holds (403 for any other)."""
    return lambda site_id: sees(user, site_id)


class CaptureAnswer(BaseModel):
    events: int = Field(description="events in the document")
    duplicates: int = Field(description="events already captured (by eventID or hash)")
    movements: int
    observations: int
    readings: int
    skipped: list[str] = Field(description="why events were not stored (first 100)")


@router.post("/capture", response_model=CaptureAnswer)
async def epcis_capture(
    request: Request, engine: Engine, settings: SettingsDep, user: OperatorUser
) -> dict[str, Any]:
    body = await read_limited_body(request, settings.cloud.max_body_bytes)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_body", f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, "invalid_body", "JSON nested too deeply") from exc
    result = await capture(engine, document, user.name, _may_write(user))
    return {
        "events": result.events,
        "duplicates": result.duplicates,
        "movements": result.movements,
        "observations": result.observations,
        "readings": result.readings,
        "skipped": result.skipped[:100],
    }
