"""Liveness, readiness and Prometheus metrics (unauthenticated, for probes and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.deps import Engine, MetricsDep
from cloud.core.errors import ApiError

router = APIRouter(tags=["health"])


class Status(BaseModel):
    status: str


@router.get("/healthz", response_model=Status)
async def healthz() -> dict[str, str]:
    """The process is up (no dependency checked)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Status)
async def readyz(engine: Engine) -> dict[str, str]:
    """The database answers."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise ApiError(503, "database_unavailable", f"database unreachable: {type(exc).__name__}") from exc
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(metrics: MetricsDep, engine: Engine) -> PlainTextResponse:
    """Prometheus text format: ingest, HTTP per route, ingest lag per edge, deliveries, jobs, DB pool."""
    return PlainTextResponse(metrics.render(engine), media_type="text/plain; version=0.0.4")
