"""Tables of the readings retention (revision 0019), on the shared metadata.

``sensor_reading_rollups``: one row per (site, sensor, quantity, zone, bucket start) for readings
older than the horizon; ``zone`` is ``""`` for readings without one (a key column cannot be NULL).
Readings the alert rules ignore (flag ``out_of_range``) are left out, as every reader of raw
readings leaves them out. ``retention_state``: the horizon per table; readings with a device time
before it exist only in the roll-up, and ingest refuses new ones there (counted).
Imported at the bottom of :mod:`cloud.core.db`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table

from cloud.core.db import ID, UtcDateTime, metadata

sensor_reading_rollups = Table(
    "sensor_reading_rollups",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("sensor_id", ID, primary_key=True),
    Column("quantity", String(16), primary_key=True),
    Column("zone", ID, primary_key=True),
    Column("bucket", UtcDateTime, primary_key=True),
    Column("unit", String(8), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("min_value", Float, nullable=False),
    Column("max_value", Float, nullable=False),
    Column("mean_value", Float, nullable=False),
    Column("first_time", UtcDateTime, nullable=False),
    Column("last_time", UtcDateTime, nullable=False),
    Index("ix_sensor_reading_rollups_zone", "zone", "bucket"),
    Index("ix_sensor_reading_rollups_sensor", "sensor_id", "bucket"),
)

retention_state = Table(
    "retention_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("horizon", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

__all__ = ["retention_state", "sensor_reading_rollups"]
