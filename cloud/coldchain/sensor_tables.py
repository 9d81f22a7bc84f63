"""Tables of sensors: their readings and latest values. On the shared metadata."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    String,
    Table,
    text,
)

from cloud.core.db import ID, UtcDateTime, event_columns, metadata

sensor_readings = Table(
    "sensor_readings",
    metadata,
    *event_columns(),
    Column("sensor_id", ID, nullable=False),
    Column("quantity", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("zone", ID),
    Column("flags", String(64), nullable=False, default=""),
    Index("ix_sensor_readings_sensor_time", "sensor_id", "time"),
    # The retention job walks readings by device time, one bucket at a time (migration 0019).
    Index("ix_sensor_readings_time", "time"),
    # One reading per (site, sensor, quantity, device time), whatever edge sequence carried it
    # (migration 0016); ingest inserts-or-ignores and counts what it left out.
    Index("ux_sensor_readings_key", "site_id", "sensor_id", "quantity", "time", unique=True),
    # Alert windows, lot history, EPCIS: readings of a zone over time. Partial: readings without a
    # zone are never asked for by zone, so they skip this index (migration 0008).
    Index(
        "ix_sensor_readings_zone_time",
        "zone",
        "time",
        sqlite_where=text("zone IS NOT NULL"),
        postgresql_where=text("zone IS NOT NULL"),
    ),
)

# Latest value per (site, sensor, quantity).
sensors = Table(
    "sensors",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("sensor_id", ID, primary_key=True),
    Column("quantity", String(16), primary_key=True),
    Column("edge_id", ID, nullable=False),
    Column("zone", ID),
    Column("unit", String(8), nullable=False),
    Column("last_value", Float, nullable=False),
    Column("last_time", UtcDateTime, nullable=False),
)

__all__ = ["sensor_readings", "sensors"]
