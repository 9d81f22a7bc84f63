"""Lots' cold-chain evidence: list with expiry, detail with MKT, report, FEFO and zone MKT.

``GET /api/v1/lots`` also answers the master-data listing's parameters (``sku``,
``expires_before``, ``limit``/``offset``) with a superset of its rows, since this router is
mounted before the master-data one and takes the path over.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse, Response

from cloud.api.deps import DbConn, ViewerUser, require_role
from cloud.api.pagination import Limit, Offset
from cloud.api.sites import all_sites, one_site
from cloud.coldchain.mkt import (
    DEFAULT_ACTIVATION_ENERGY_KJ,
    MAX_ACTIVATION_ENERGY_KJ,
    MIN_ACTIVATION_ENERGY_KJ,
)
from cloud.core import db
from cloud.core.errors import ApiError
from cloud.core.security import Role
from cloud.lots import evidence as lots_evidence
from cloud.lots import pages as pages
from cloud.lots import report as lot_report
from cloud.lots import service as svc
from cloud.lots.schemas import FefoAnswer, LotDetail, LotPage, LotReport, ZoneMkt

router = APIRouter(prefix="/api/v1", tags=["lots"], dependencies=[Depends(require_role(Role.viewer))])

ActivationEnergy = Annotated[
    float,
    Query(
        ge=MIN_ACTIVATION_ENERGY_KJ,
        le=MAX_ACTIVATION_ENERGY_KJ,
        description="ΔH in kJ/mol for the mean kinetic temperature",
    ),
]
# A lot's evidence follows it across sites (stays, readings): users of every site only.
ChainOfCustody = [Depends(all_sites(Role.viewer))]
Since = Annotated[datetime | None, Query(description="window start (naive = UTC)")]
Until = Annotated[datetime | None, Query(description="window end (naive = UTC)")]
_REPORT_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "model": LotReport,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and db.utc(since) >= db.utc(until):
        raise ApiError(422, "validation_error", "since must be before until")


async def _evidence(
    conn: DbConn, lot_id: str, since: datetime | None, until: datetime | None, energy: float
) -> lots_evidence.LotEvidence:
    _window(since, until)
    return await lots_evidence.lot_evidence(
        conn, lot_id, since=since, until=until, activation_energy_kj=energy
    )


@router.get("/lots", response_model=LotPage)
async def list_lots_with_expiry(
    conn: DbConn,
    user: ViewerUser,
    site: Annotated[str | None, Query(description="only lots with items on hand at this site")] = None,
    product: Annotated[str | None, Query(description="SKU")] = None,
    sku: Annotated[str | None, Query(description="same as product (master-data name)")] = None,
    expiring_within_days: Annotated[
        float | None,
        Query(ge=0, le=36500, allow_inf_nan=False, description="on hand, effective expiry within N days"),
    ] = None,
    expires_before: Annotated[date | None, Query(description="printed expiry before this day")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Served from the lot-evidence read model (cloud.lots.pages): a page costs its rows."""
    rows, total = await pages.list_lots(
        conn,
        product=product or sku,
        site=one_site(user, site),
        expiring_within_days=expiring_within_days,
        expires_before=expires_before,
        limit=limit,
        offset=offset,
    )
    return {"items": rows, "total": total}


@router.get("/fefo", response_model=FefoAnswer)
async def fefo(
    conn: DbConn,
    user: ViewerUser,
    product: str | None = None,
    site: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="products per page")] = 100,
    after: Annotated[str | None, Query(description="the previous page's `next` (a SKU)")] = None,
) -> dict[str, Any]:
    """First-expired-first-out pick order per product by effective expiry (lots on hand only),
    ``limit`` products per page; ``next`` is the cursor of the following page (null: the last)."""
    products, following = await pages.fefo(
        conn, product=product, site=one_site(user, site), limit=limit, after=after
    )
    return {"products": products, "next": following}


@router.get(
    "/lots/{lot_id}/report", response_model=None, dependencies=ChainOfCustody, responses=_REPORT_FORMATS
)
async def lot_report_route(
    conn: DbConn,
    lot_id: str,
    format: Literal["json", "csv", "png"] = "json",
    since: Since = None,
    until: Until = None,
    activation_energy_kj: ActivationEnergy = DEFAULT_ACTIVATION_ENERGY_KJ,
) -> Response | LotReport:
    evidence = await _evidence(conn, lot_id, since, until, activation_energy_kj)
    name = lot_id.replace(":", "_")
    if format == "csv":
        headers = {"Content-Disposition": f'attachment; filename="lot-{name}.csv"'}
        return PlainTextResponse(lot_report.render_csv(evidence), media_type="text/csv", headers=headers)
    if format == "png":
        return Response(lot_report.render_png(evidence), media_type="image/png")
    return LotReport.model_validate(lot_report.report_dict(evidence))


@router.get("/lots/{lot_id}", response_model=LotDetail, dependencies=ChainOfCustody)
async def get_lot(
    conn: DbConn,
    lot_id: str,
    since: Since = None,
    until: Until = None,
    activation_energy_kj: ActivationEnergy = DEFAULT_ACTIVATION_ENERGY_KJ,
) -> dict[str, Any]:
    """One lot: its summary (``mkt_c`` over the window), stays and excursion episodes."""
    evidence = await _evidence(conn, lot_id, since, until, activation_energy_kj)
    report = lot_report.report_dict(evidence)
    return {
        **report["lot"],
        "since": evidence.since,
        "until": evidence.until,
        "activation_energy_kj": activation_energy_kj,
        "stays": report["stays"],
        "excursions": report["excursions"],
    }


@router.get("/zones/{zone}/mkt", response_model=ZoneMkt)
async def zone_mkt(
    conn: DbConn,
    user: ViewerUser,
    zone: str,
    site: str | None = None,
    since: Since = None,
    until: Until = None,
    activation_energy_kj: ActivationEnergy = DEFAULT_ACTIVATION_ENERGY_KJ,
) -> dict[str, Any]:
    """MKT of a zone's temperature over ``[since, until)`` (default: the last 30 days)."""
    end = db.utc(until) if until is not None else db.utcnow()
    start = db.utc(since) if since is not None else end - timedelta(days=30)
    _window(start, end)
    return await svc.zone_mkt(
        conn,
        zone,
        since=start,
        until=end,
        site=one_site(user, site),
        activation_energy_kj=activation_energy_kj,
    )
