"""The API's view of the readings roll-up (``GET /api/v1/sensors/{sensor_id}/rollups``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class SensorRollupPublic(BaseModel):
    """A sensor's readings of one bucket, after the retention period (cloud.retention)."""

    model_config = ConfigDict(extra="forbid")

    site_id: str
    sensor_id: str
    quantity: str
    zone: str | None
    bucket: datetime
    unit: str
    count: int
    min_value: float
    max_value: float
    mean_value: float
    first_time: datetime
    last_time: datetime


__all__ = ["SensorRollupPublic"]
