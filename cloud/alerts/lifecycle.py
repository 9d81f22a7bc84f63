"""People acting on alerts: acknowledge (who, when, why) and close with a reason; plus alert detail.

Lifecycle: ``open`` -> ``acknowledged`` -> ``resolved``. Acknowledging says "someone is on it"; it
stops escalation but does not end the excursion: the alert stays active (the evaluation keeps
updating its peak) and resolves only when readings return inside the limits, or when an operator
closes it here with a reason. Each action returns the stored row and a
:class:`~cloud.coldchain.service.Notice` for the caller to hand on after the commit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.alerts import tables as alerts_db
from cloud.alerts.rules import GAP_RULE, Limits
from cloud.coldchain import sensor_tables as sensors_db
from cloud.coldchain import tables as cc
from cloud.coldchain.service import Notice, alert_row
from cloud.core import db
from cloud.core.errors import CloudError
from cloud.retention.reads import zone_rollups

READINGS_MARGIN = timedelta(hours=1)
MAX_WINDOW_READINGS = 5000
_QUANTITY = {"max_humidity": "humidity"}


class AlertNotFound(CloudError):
    """No alert with that id."""

    status_code = 404
    code = "not_found"


class AlertStateConflict(CloudError):
    """The action does not fit the alert's current status (e.g. acknowledging a resolved alert)."""

    status_code = 409
    code = "conflict"


async def _locked(conn: AsyncConnection, alert_id: int) -> dict[str, Any]:
    row = (
        (
            await conn.execute(
                select(alerts_db.alerts).where(alerts_db.alerts.c.id == alert_id).with_for_update()
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise AlertNotFound(f"alert {alert_id} does not exist")
    return dict(row)


async def acknowledge(
    engine: AsyncEngine, alert_id: int, user: str, comment: str
) -> tuple[dict[str, Any], Notice]:
    """``open`` -> ``acknowledged``; the comment is required (the caller checks it is not blank)."""
    async with db.write_transaction(engine) as conn:
        row = await _locked(conn, alert_id)
        if row["status"] != "open":
            raise AlertStateConflict(
                f"alert {alert_id} is {row['status']}, only an open alert can be acknowledged"
            )
        values = {"status": "acknowledged", "acknowledged_at": db.utcnow(), "acknowledged_by": user}
        values["ack_comment"] = comment
        await conn.execute(update(alerts_db.alerts).where(alerts_db.alerts.c.id == alert_id).values(values))
        row.update(values)
    return row, Notice(row, "acknowledged")


async def resolve(
    engine: AsyncEngine, alert_id: int, user: str, reason: str
) -> tuple[dict[str, Any], Notice]:
    """Close an active alert by hand, with the operator's reason."""
    async with db.write_transaction(engine) as conn:
        row = await _locked(conn, alert_id)
        if row["status"] == "resolved":
            raise AlertStateConflict(f"alert {alert_id} is already resolved")
        values = {
            "status": "resolved",
            "resolved_at": db.utcnow(),
            "resolved_by": user,
            "resolve_reason": reason,
        }
        await conn.execute(update(alerts_db.alerts).where(alerts_db.alerts.c.id == alert_id).values(values))
        row.update(values)
    return row, Notice(row, "resolved")


async def alert_detail(conn: AsyncConnection, alert_id: int, limits: Limits | None) -> dict[str, Any]:
    """The alert, the readings of its zone around it (for a chart), its limits and excursion events."""
    row = await alert_row(conn, alert_id)
    if row is None:
        raise AlertNotFound(f"alert {alert_id} does not exist")
    start = db.utc(row["first_breach_at"]) - READINGS_MARGIN
    end = db.utc(row["resolved_at"] or row["last_breach_at"]) + READINGS_MARGIN
    r = sensors_db.sensor_readings
    query = (
        select(r.c.sensor_id, r.c.quantity, r.c.value, r.c.unit, r.c.time)
        .where(r.c.site_id == row["site_id"], r.c.zone == row["zone"], r.c.time >= start, r.c.time <= end)
        .order_by(r.c.time, r.c.id)
        .limit(MAX_WINDOW_READINGS)
    )
    quantity = None if row["rule"] == GAP_RULE else _QUANTITY.get(row["rule"], "temperature")
    if quantity is not None:
        query = query.where(r.c.quantity == quantity)
    readings = [dict(x) for x in (await conn.execute(query)).mappings()]
    rollups = await zone_rollups(conn, row["site_id"], row["zone"], start, end, quantity)
    e = cc.excursion_events
    events = (
        await conn.execute(
            select(e.c.sensor_id, e.c.kind, e.c.rule, e.c.state, e.c.at, e.c.started_at, e.c.value, e.c.peak)
            .where(e.c.alert_id == alert_id)
            .order_by(e.c.at, e.c.id)
        )
    ).mappings()
    return {
        **row,
        "limits": limits.as_dict() if limits is not None else None,
        "window": {"start": start, "end": end},
        "readings": readings,
        "readings_truncated": len(readings) >= MAX_WINDOW_READINGS,
        "rollups": rollups,  # past the retention period (cloud.retention)
        "events": [dict(x) for x in events],
    }


async def deliveries(conn: AsyncConnection, alert_id: int) -> list[dict[str, Any]]:
    if await alert_row(conn, alert_id) is None:
        raise AlertNotFound(f"alert {alert_id} does not exist")
    d = cc.alert_deliveries
    rows = await conn.execute(select(d).where(d.c.alert_id == alert_id).order_by(d.c.id))
    return [dict(x) for x in rows.mappings()]


__all__ = [
    "AlertNotFound",
    "AlertStateConflict",
    "acknowledge",
    "alert_detail",
    "deliveries",
    "resolve",
]
