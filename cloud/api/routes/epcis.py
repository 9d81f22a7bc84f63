"""GS1 EPCIS 2.0: observations and movements as an ``EPCISQueryDocument`` (JSON-LD)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from cloud.api.deps import DbConn
from cloud.api.sites import all_sites
from cloud.core.security import Role
from cloud.replenish.epcis import MAX_EVENTS, query_document, query_events

# The events of every site: users of every site only.
router = APIRouter(prefix="/api/v1", tags=["epcis"], dependencies=[Depends(all_sites(Role.viewer))])


@router.get("/epcis/events")
async def epcis_events(
    conn: DbConn,
    since: Annotated[datetime | None, Query(description="events at or after (naive = UTC)")] = None,
    until: Annotated[datetime | None, Query(description="events before (naive = UTC)")] = None,
    epc: Annotated[str | None, Query(description="one tag, hex")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000,
) -> JSONResponse:
    events = await query_events(conn, since, until, epc, limit)
    return JSONResponse(query_document(events), media_type="application/ld+json")
