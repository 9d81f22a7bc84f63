"""Reading old readings across the retention horizon: raw rows after it, the roll-up before it.

A lot's history (stays, MKT, excursions, consumed shelf life) is computed from a zone's readings
held piecewise (:mod:`cloud.coldchain.lot_history`). Before the horizon only buckets remain, so
each bucket stands in as two synthetic sensors, ``<sensor>[max]`` at the bucket's maximum and
``<sensor>[min]`` at its minimum, held from the bucket's first to its last raw reading (a point
every ``step_s``, below the hold limit, so the bucket's observed time stays observed). The zone's
envelope then takes the maximum for MKT, shelf life and time above the limit, and the minimum for
time below it: past retention, evidence is conservative at bucket resolution, never optimistic.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.core import db
from cloud.retention.rollup import horizon
from cloud.retention.tables import sensor_reading_rollups

ROLLUP_FLAG = "rollup"


def _points(first: datetime, last: datetime, step_s: float) -> list[datetime]:
    points, moment, step = [], first, timedelta(seconds=step_s)
    while moment < last:
        points.append(moment)
        moment += step
    points.append(last)
    return points


async def rolled_zone_readings(
    conn: AsyncConnection,
    site_id: str | None,
    zone: str,
    since: datetime,
    until: datetime,
    step_s: float,
    quantity: str = "temperature",
) -> tuple[datetime | None, list[dict[str, Any]]]:
    """(the horizon, the zone's synthetic readings in ``[since, until]`` before it), time-ordered.
    Readers take raw rows from the horizon on."""
    current = await horizon(conn)
    if current is None or since >= current:
        return current, []
    r = sensor_reading_rollups
    query = select(r).where(
        r.c.zone == zone,
        r.c.quantity == quantity,
        r.c.last_time >= since,
        r.c.first_time <= until,
        r.c.bucket < current,
    )
    if site_id is not None:
        query = query.where(r.c.site_id == site_id)
    rows: list[dict[str, Any]] = []
    for bucket in (await conn.execute(query.order_by(r.c.bucket))).mappings():
        for moment in _points(db.utc(bucket["first_time"]), db.utc(bucket["last_time"]), step_s):
            if since <= moment <= until:
                for side, value in (("max", bucket["max_value"]), ("min", bucket["min_value"])):
                    rows.append(
                        {
                            "site_id": bucket["site_id"],
                            "zone": bucket["zone"],
                            "sensor_id": f"{bucket['sensor_id']}[{side}]",
                            "time": moment,
                            "value": value,
                            "flags": ROLLUP_FLAG,
                        }
                    )
    rows.sort(key=lambda row: (row["time"], row["sensor_id"]))
    return current, rows


async def zone_rollups(
    conn: AsyncConnection, site_id: str, zone: str, start: datetime, end: datetime, quantity: str | None
) -> list[dict[str, Any]]:
    """A zone's buckets overlapping ``[start, end]`` (an old alert's chart: its raw readings are gone)."""
    r = sensor_reading_rollups
    query = select(r).where(
        r.c.site_id == site_id, r.c.zone == zone, r.c.last_time >= start, r.c.first_time <= end
    )
    if quantity is not None:
        query = query.where(r.c.quantity == quantity)
    rows = await conn.execute(query.order_by(r.c.bucket, r.c.sensor_id, r.c.quantity))
    return [{**row, "zone": row["zone"] or None} for row in rows.mappings()]


__all__ = ["ROLLUP_FLAG", "rolled_zone_readings", "zone_rollups"]
