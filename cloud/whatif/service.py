"""One entry point for the CLI and the API: scenario text or data in, report (and chart) out."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.whatif.errors import ScenarioError
from cloud.whatif.model import SiteModel
from cloud.whatif.run import check_size, report, simulate, synthetic_model
from cloud.whatif.scenario import Scenario
from cloud.whatif.state import load_model
from shelfsense.config import ReplenishSettings

CLI_MAX_LANE_DAYS = 2e10  # a safety net only: the CLI user owns the machine


async def model_for(
    scenario: Scenario, engine: AsyncEngine | None, settings: ReplenishSettings, today: date | None = None
) -> SiteModel:
    """The scenario's own ``[site]``, else ``site_id`` loaded from the cloud database."""
    if scenario.site is not None:
        return synthetic_model(scenario)
    if engine is None:
        raise ScenarioError("the scenario has no [site]: give a database (--db) to load site_id")
    async with engine.connect() as conn:
        return await load_model(conn, scenario, settings, today)


def run_report(
    scenario: Scenario, model: SiteModel, *, max_lane_days: float, sku_pattern: str | None = None
) -> dict[str, Any]:
    check_size(scenario, model.n_items, max_lane_days)
    return report(scenario, model, simulate(scenario, model), sku_pattern)


async def run_async(
    scenario: Scenario,
    engine: AsyncEngine | None,
    settings: ReplenishSettings,
    *,
    max_lane_days: float,
    sku_pattern: str | None = None,
) -> dict[str, Any]:
    """Load (async, on the event loop), then simulate in a worker thread so the loop stays free."""
    model = await model_for(scenario, engine, settings)
    check_size(scenario, model.n_items, max_lane_days)
    return await asyncio.to_thread(
        run_report, scenario, model, max_lane_days=max_lane_days, sku_pattern=sku_pattern
    )


def run_sync(
    scenario: Scenario, db_url: str | None, settings: ReplenishSettings, sku_pattern: str | None = None
) -> dict[str, Any]:
    """``shelfsense whatif``: the report, loading from ``db_url`` when the scenario has no [site]."""
    if scenario.site is not None or db_url is None:
        model = synthetic_model(scenario)
        return run_report(scenario, model, max_lane_days=CLI_MAX_LANE_DAYS, sku_pattern=sku_pattern)

    async def main() -> dict[str, Any]:
        from cloud.core import db
        from cloud.core.migrate import ensure_schema

        engine = db.create_engine(db_url)
        try:
            await ensure_schema(engine)
            return await run_async(
                scenario, engine, settings, max_lane_days=CLI_MAX_LANE_DAYS, sku_pattern=sku_pattern
            )
        finally:
            await engine.dispose()

    return asyncio.run(main())
