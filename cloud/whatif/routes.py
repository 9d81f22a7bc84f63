"""``POST /api/v1/whatif`` (JSON report) and ``POST /api/v1/whatif/png`` (the chart), operators only.

The body is the scenario: TOML (``Content-Type: application/toml`` or ``text/plain``) or the same
structure as JSON. Requests are bounded so one cannot hog the server: the body size, the runs and
the total work (items x runs x days x scenario rows); one simulation at a time per process (a second
gets 429), run in a worker thread so the event loop keeps serving. A scenario names the site it
simulates (``site_id``) or carries its own synthetic ``[site]``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cloud.api.body import read_limited_body
from cloud.api.deps import Engine, OperatorUser, SettingsDep, UserPrincipal
from cloud.api.sites import check_site
from cloud.core.errors import ApiError
from cloud.whatif.chart import chart_png
from cloud.whatif.errors import WhatIfError
from cloud.whatif.scenario import Scenario, load_scenario_text, parse_scenario
from cloud.whatif.service import run_async

router = APIRouter(prefix="/api/v1", tags=["what-if"])
MAX_BODY_BYTES = 256 * 1024
MAX_API_RUNS = 500
MAX_API_LANE_DAYS = 3e8  # about the benchmark's 2,000 SKUs x 2 sites x 180 days x 200 runs, twice


def _lock(request: Request) -> asyncio.Lock:
    """One simulation at a time per app (a lock per app: tests run several apps in one process)."""
    lock = getattr(request.app.state, "whatif_lock", None)
    if lock is None:
        lock = request.app.state.whatif_lock = asyncio.Lock()
    return lock


def _scenario(body: bytes, content_type: str) -> Scenario:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_scenario", "body is not UTF-8") from exc
    if "json" in content_type:
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiError(422, "invalid_scenario", f"body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(422, "invalid_scenario", "the scenario must be a JSON object")
        scenario = parse_scenario(data)
    else:
        scenario = load_scenario_text(text)
    if scenario.simulation.runs > MAX_API_RUNS:
        raise ApiError(413, "scenario_too_large", f"at most {MAX_API_RUNS} runs through the API")
    return scenario


async def _report(
    request: Request, engine: Any, settings: Any, user: UserPrincipal, sku: str | None
) -> dict[str, Any]:
    body = await read_limited_body(request, min(MAX_BODY_BYTES, settings.cloud.max_body_bytes))
    busy = _lock(request)
    if busy.locked():
        raise ApiError(429, "busy", "a what-if simulation is already running; try again shortly")
    async with busy:
        try:
            scenario = _scenario(body, request.headers.get("content-type", ""))
            if scenario.site is None:  # a cloud site is read: only by users of that site
                check_site(user, scenario.site_id, f"site {scenario.site_id!r}")
            return await run_async(
                scenario, engine, settings.cloud.replenish, max_lane_days=MAX_API_LANE_DAYS, sku_pattern=sku
            )
        except WhatIfError as exc:
            raise ApiError(exc.status_code, exc.code, str(exc)) from exc


SkuQuery = Annotated[
    str | None, Query(max_length=200, description="per-SKU rows for SKUs matching this pattern")
]


@router.post("/whatif")
async def whatif(
    request: Request, engine: Engine, settings: SettingsDep, user: OperatorUser, sku: SkuQuery = None
) -> dict[str, Any]:
    """Simulate the scenario's policies under its shocks; metrics with 95 % intervals per row."""
    return await _report(request, engine, settings, user, sku)


@router.post("/whatif/png", response_class=Response)
async def whatif_png(request: Request, engine: Engine, settings: SettingsDep, user: OperatorUser) -> Response:
    """The same simulation as a chart: inventory value and stock-outs per day, per policy and row."""
    report = await _report(request, engine, settings, user, None)
    png = await asyncio.to_thread(chart_png, report)
    return Response(png, media_type="image/png")
