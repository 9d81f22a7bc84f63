"""Stocktake API models: runs, locations, discrepancies."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from cloud.api.schemas import PublicModel


class StocktakeLocationPublic(PublicModel):
    location: str
    status: str = Field(description="ok, degraded, no_coverage (readers quiet) or idle (nothing to judge)")
    book_count: int
    seen_count: int
    observed_count: int
    read_rate: float | None
    baseline_read_rate: float | None
    confidence: float | None = Field(description="chance a present item would have been seen in K windows")


class StocktakeRunPublic(PublicModel):
    id: int
    site_id: str
    window_start: datetime
    window_end: datetime
    started_at: datetime
    finished_at: datetime | None
    runner: str
    missing_after_windows: int
    missing: int
    misplaced: int
    unexpected: int
    unknown: int
    new_discrepancies: int = Field(description="opened by this run (delta against the previous run)")
    resolved_discrepancies: int = Field(description="no longer seen by this run")
    locations: list[StocktakeLocationPublic]


class DiscrepancyPublic(PublicModel):
    id: int
    site_id: str
    kind: str
    epc: str
    location: str
    book_location: str | None
    status: str
    unseen_windows: int
    first_run_id: int
    last_run_id: int
    resolved_run_id: int | None
    decided_by: str | None
    decided_at: datetime | None


class StocktakeRunDetail(StocktakeRunPublic):
    current: list[DiscrepancyPublic] = Field(
        description="discrepancies this run saw (first_run_id = id: new)"
    )
    resolved: list[DiscrepancyPublic] = Field(description="discrepancies this run no longer saw")


__all__ = ["DiscrepancyPublic", "StocktakeLocationPublic", "StocktakeRunDetail", "StocktakeRunPublic"]
