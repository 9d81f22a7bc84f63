"""Alert API models."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from cloud.api.schemas import PublicModel


class AlertPublic(PublicModel):
    id: int
    site_id: str
    zone: str
    rule: str
    status: str
    source: str = Field(description="cloud, edge or both")
    sensor_id: str | None
    limit: float | None
    peak_value: float
    last_value: float
    first_breach_at: datetime
    last_breach_at: datetime
    resolved_at: datetime | None


__all__ = ["AlertPublic"]
