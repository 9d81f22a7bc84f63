"""Sensor API models: latest values and readings."""

from __future__ import annotations

from datetime import datetime

from cloud.api.schemas import PublicModel


class SensorPublic(PublicModel):
    site_id: str
    sensor_id: str
    quantity: str
    edge_id: str
    zone: str | None
    unit: str
    last_value: float
    last_time: datetime


class SensorReadingPublic(PublicModel):
    site_id: str
    edge_id: str
    sensor_id: str
    quantity: str
    value: float
    unit: str
    time: datetime
    zone: str | None
    flags: list[str]


__all__ = ["SensorPublic", "SensorReadingPublic"]
