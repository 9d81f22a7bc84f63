"""GS1 EPCIS 2.0: observations and movements as an ``EPCISQueryDocument`` (JSON-LD)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from cloud.api.deps import DbConn, require_role
from cloud.core.security import Role
from cloud.replenish.epcis import MAX_EVENTS, query_document, query_events

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

router = APIRouter(prefix="/api/v1", tags=["epcis"], dependencies=[Depends(require_role(Role.viewer))])


@router.get("/epcis/events", response_class=LdJsonResponse, responses=_RESPONSES)
async def epcis_events(
    conn: DbConn,
    since: Annotated[datetime | None, Query(description="events at or after (naive = UTC)")] = None,
    until: Annotated[datetime | None, Query(description="events before (naive = UTC)")] = None,
    epc: Annotated[str | None, Query(description="one tag, hex")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000,
) -> JSONResponse:
    events = await query_events(conn, since, until, epc, limit)
    return LdJsonResponse(query_document(events))
