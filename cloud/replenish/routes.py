"""Replenishment: proposals and their approvals, the run, exports, and replenishment master data.

Viewers read; operators (or the role an approval step names) approve and reject; admins run the
planner, import data and export.
"""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from cloud.api.body import read_limited_body
from cloud.api.deps import AdminUser, DbConn, Engine, OperatorUser, SettingsDep, ViewerUser, require_role
from cloud.api.pagination import Limit, Offset, paginate
from cloud.api.sites import AllSitesAdmin, check_site, one_site, site_clause
from cloud.core import csvsafe
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.replenish import approvals as replenish_approvals
from cloud.replenish import demand as replenish_demand
from cloud.replenish import export as replenish_export
from cloud.replenish import masterdata as rmd
from cloud.replenish import options as replenish_options
from cloud.replenish import run as replenish_run
from cloud.replenish import tables as rt
from cloud.replenish.schemas import (
    ExportedResult,
    ForecastPage,
    ImportResult,
    ProposalDetail,
    ProposalPage,
    RunResult,
)

router = APIRouter(prefix="/api/v1", tags=["replenishment"])
Viewer = [Depends(require_role(Role.viewer))]
StatusParam = Literal["open", "approved", "rejected", "exported", "all"]


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, Field(max_length=2000)] = ""


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str | None = None
    dry_run: bool = False


class ExportedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[int], Field(min_length=1, max_length=1000)]


@router.get("/proposals", response_model=ProposalPage, dependencies=Viewer)
async def list_proposals(
    conn: DbConn,
    user: ViewerUser,
    status: StatusParam | None = None,
    site: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Proposals, newest first, each with its reasoning and approval steps."""
    query = replenish_approvals.proposals_query(status, None).where(
        site_clause(user, rt.proposals.c.site_id, site)
    )
    rows, total = await paginate(conn, query, limit, offset)
    return {"items": [replenish_run.public_row(r) for r in rows], "total": total}


@router.get("/forecasts", response_model=ForecastPage, dependencies=Viewer)
async def list_forecasts(
    conn: DbConn,
    user: ViewerUser,
    site: str | None = None,
    product: str | None = None,
    location: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Forecast accuracy per series and run day (MAE, bias, MASE, method, demand class), newest first."""
    query = replenish_demand.forecasts_query(None, product, location)
    query = query.where(site_clause(user, rt.forecast_errors.c.site_id, site))
    rows, total = await paginate(conn, query, limit, offset)
    return {"items": [replenish_run.public_row(r) for r in rows], "total": total}


@router.get("/proposals/export")
async def export_proposals(
    conn: DbConn,
    _admin: AllSitesAdmin,
    format: Literal["csv", "json"] = "json",
    status: Annotated[Literal["approved", "exported", "all"], Query()] = "approved",
    site: str | None = None,
) -> PlainTextResponse:
    """Approved (default) or exported proposals for an ERP; reading does not mark them exported."""
    rows = await replenish_export.export_rows(conn, status, site)
    if format == "json":
        return PlainTextResponse(
            json.dumps({"proposals": rows}, default=str, indent=2) + "\n", media_type="application/json"
        )
    out = io.StringIO()
    writer = csvsafe.DictWriter(
        out, fieldnames=list(replenish_export.EXPORT_COLUMNS), lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return PlainTextResponse(out.getvalue(), media_type="text/csv")


@router.post("/proposals/exported", response_model=ExportedResult)
async def mark_exported(body: ExportedBody, engine: Engine, _admin: AllSitesAdmin) -> dict[str, list[int]]:
    """An ERP that pulled the export confirms what it took: approved -> exported."""
    from cloud.core import db

    async with db.write_transaction(engine) as conn:
        done = await replenish_export.mark_exported(conn, body.ids)
    return {"exported": done}


@router.post("/proposals/run", response_model=RunResult)
async def run_replenishment(
    body: RunBody, request: Request, engine: Engine, admin: AdminUser
) -> dict[str, Any]:
    """Run the planner now (or a dry run that writes nothing); admins of some sites name one."""
    options: replenish_options.ReplenishOptions = request.app.state.replenish
    site = one_site(admin, body.site)
    try:
        return await replenish_run.replenish(engine, options, site=site, dry_run=body.dry_run)
    except ValueError as exc:  # the numeric core refuses unusable input
        raise ApiError(422, "invalid_replenishment_input", str(exc)) from exc


@router.get("/proposals/{proposal_id}", response_model=ProposalDetail, dependencies=Viewer)
async def get_proposal(proposal_id: int, conn: DbConn, user: ViewerUser) -> dict[str, Any]:
    proposal = await replenish_approvals.get_proposal(conn, proposal_id)
    check_site(user, proposal["site_id"], f"proposal {proposal_id}")
    return proposal


async def _decide(
    proposal_id: int,
    decision: str,
    body: DecisionBody,
    engine: Engine,
    settings: SettingsDep,
    user: OperatorUser,
) -> dict[str, Any]:
    p = rt.proposals
    async with engine.connect() as conn:
        site_id = await conn.scalar(select(p.c.site_id).where(p.c.id == proposal_id))
    check_site(user, site_id, f"proposal {proposal_id}")  # a missing one: 404 too
    approver = replenish_options.Approver(user.name, user.role)
    return await replenish_approvals.decide(
        engine, proposal_id, decision, approver, body.comment, settings.cloud.replenish
    )


@router.post("/proposals/{proposal_id}/approve", response_model=ProposalDetail)
async def approve(
    proposal_id: int, body: DecisionBody, engine: Engine, settings: SettingsDep, user: OperatorUser
) -> dict[str, Any]:
    """Fill the next approval step; the last step makes the proposal ``approved`` (then exported)."""
    return await _decide(proposal_id, "approve", body, engine, settings, user)


@router.post("/proposals/{proposal_id}/reject", response_model=ProposalDetail)
async def reject(
    proposal_id: int, body: DecisionBody, engine: Engine, settings: SettingsDep, user: OperatorUser
) -> dict[str, Any]:
    return await _decide(proposal_id, "reject", body, engine, settings, user)


@router.post("/replenish/{kind}/import", response_model=ImportResult)
async def import_replenish_data(
    kind: Literal["suppliers", "product_suppliers", "params", "purchase_orders", "demand"],
    request: Request,
    engine: Engine,
    settings: SettingsDep,
    _admin: AllSitesAdmin,
) -> dict[str, int]:
    """Upsert a whole CSV (``text/csv``) or JSON file; all rows or none."""
    body = await read_limited_body(request, settings.cloud.max_body_bytes)
    fmt: Literal["csv", "json"] = "csv" if "csv" in request.headers.get("content-type", "") else "json"
    try:
        count = await rmd.import_text(engine, kind, body.decode("utf-8-sig"), fmt)
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_master_data", "body is not UTF-8") from exc
    return {"imported": count}
