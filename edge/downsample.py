"""Durable downsampling of telemetry while the outbox is over its budget.

When the edge degrades (see :class:`edge.outbox.OutboxBudget`), telemetry no longer gets one
outbox row per event. Instead it is folded, in the same transaction that would have queued it,
into per-interval buckets:

- :class:`SensorReading`: per (sensor, quantity, interval) the reading with the minimum value, the
  one with the maximum value and the latest one (at most 3 rows, fewer when they coincide);
- :class:`TagObservation`: per (EPC, reader, antenna, interval) one merged observation (earliest
  first_seen, latest last_seen, summed count, peak RSSI);
- :class:`DeviceHealth`: per (device, interval) the latest report.

Why buckets in SQLite and not in memory: the MQTT transport PUBACKs once ``append`` returns, so a
folded reading must be as durable as a queued one. Why fold *before* a sequence number is given,
rather than thinning rows already in the outbox: the cloud acknowledges the highest contiguous
sequence, so deleting queued rows would leave holes it can never fill.

:func:`flush_buckets` turns buckets open for at least one interval into ordinary events, which the
outbox then queues with the next sequence numbers. Stock events and alarms never come here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime

import aiosqlite

from shelfsense.contract import DeviceHealth, Event, SensorReading, TagObservation, parse_event

SCHEMA = """
CREATE TABLE IF NOT EXISTS reading_buckets (
    sensor_id TEXT NOT NULL, quantity TEXT NOT NULL, bucket INTEGER NOT NULL, role TEXT NOT NULL,
    value REAL NOT NULL, time_unix REAL NOT NULL, body TEXT NOT NULL, opened_at REAL NOT NULL,
    PRIMARY KEY (sensor_id, quantity, bucket, role)
);
CREATE TABLE IF NOT EXISTS tag_buckets (
    epc TEXT NOT NULL, reader TEXT NOT NULL, antenna INTEGER NOT NULL, bucket INTEGER NOT NULL,
    location TEXT, first_seen TEXT NOT NULL, first_unix REAL NOT NULL, last_seen TEXT NOT NULL,
    last_unix REAL NOT NULL, count INTEGER NOT NULL, rssi REAL, opened_at REAL NOT NULL,
    PRIMARY KEY (epc, reader, antenna, bucket)
);
CREATE TABLE IF NOT EXISTS health_buckets (
    device_id TEXT NOT NULL, bucket INTEGER NOT NULL, at_unix REAL NOT NULL, body TEXT NOT NULL,
    opened_at REAL NOT NULL, PRIMARY KEY (device_id, bucket)
);
"""

TELEMETRY = (SensorReading, TagObservation, DeviceHealth)

_READING_UPSERT = (
    "INSERT INTO reading_buckets (sensor_id, quantity, bucket, role, value, time_unix, body, opened_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sensor_id, quantity, bucket, role) DO UPDATE SET "
    "value = excluded.value, time_unix = excluded.time_unix, body = excluded.body WHERE {condition}"
)
_ROLE_CONDITIONS = {
    "min": "excluded.value < reading_buckets.value",
    "max": "excluded.value > reading_buckets.value",
    "last": "excluded.time_unix >= reading_buckets.time_unix",
}
_TAG_UPSERT = (
    "INSERT INTO tag_buckets (epc, reader, antenna, bucket, location, first_seen, first_unix, last_seen, "
    "last_unix, count, rssi, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (epc, reader, antenna, bucket) DO UPDATE SET "
    "first_seen = CASE WHEN excluded.first_unix < first_unix THEN excluded.first_seen ELSE first_seen END, "
    "first_unix = MIN(first_unix, excluded.first_unix), "
    "last_seen = CASE WHEN excluded.last_unix > last_unix THEN excluded.last_seen ELSE last_seen END, "
    "last_unix = MAX(last_unix, excluded.last_unix), count = count + excluded.count, "
    "rssi = CASE WHEN rssi IS NULL THEN excluded.rssi WHEN excluded.rssi IS NULL THEN rssi "
    "ELSE MAX(rssi, excluded.rssi) END"
)
_HEALTH_UPSERT = (
    "INSERT INTO health_buckets (device_id, bucket, at_unix, body, opened_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (device_id, bucket) DO UPDATE SET at_unix = excluded.at_unix, body = excluded.body "
    "WHERE excluded.at_unix >= health_buckets.at_unix"
)


def is_telemetry(event: Event) -> bool:
    return isinstance(event, TELEMETRY)


def _bucket(when: datetime, interval_s: float) -> int:
    return math.floor(when.timestamp() / interval_s)


async def fold(db: aiosqlite.Connection, events: Sequence[Event], interval_s: float, now: float) -> int:
    """Fold telemetry ``events`` into their buckets (inside the caller's transaction); returns how many."""
    readings = [e for e in events if isinstance(e, SensorReading)]
    if readings:
        rows = [
            (
                r.sensor_id,
                r.quantity,
                _bucket(r.time, interval_s),
                r.value,
                r.time.timestamp(),
                r.model_dump_json(),
            )
            for r in readings
        ]
        for role, condition in _ROLE_CONDITIONS.items():
            await db.executemany(
                _READING_UPSERT.format(condition=condition),
                [(s, q, b, role, v, t, body, now) for s, q, b, v, t, body in rows],
            )
    tags = [e for e in events if isinstance(e, TagObservation)]
    if tags:
        await db.executemany(
            _TAG_UPSERT,
            [
                (
                    t.epc,
                    t.reader,
                    t.antenna,
                    _bucket(t.first_seen, interval_s),
                    t.location,
                    t.first_seen.isoformat(),
                    t.first_seen.timestamp(),
                    t.last_seen.isoformat(),
                    t.last_seen.timestamp(),
                    t.count,
                    t.rssi,
                    now,
                )
                for t in tags
            ],
        )
    health = [e for e in events if isinstance(e, DeviceHealth)]
    if health:
        await db.executemany(
            _HEALTH_UPSERT,
            [
                (h.device_id, _bucket(h.at, interval_s), h.at.timestamp(), h.model_dump_json(), now)
                for h in health
            ],
        )
    return len(readings) + len(tags) + len(health)


async def take_closed(db: aiosqlite.Connection, opened_before: float) -> list[Event]:
    """Remove buckets opened before ``opened_before`` and return their events, oldest first."""
    events: list[tuple[float, Event]] = []
    seen: set[str] = set()
    async with db.execute(
        "SELECT time_unix, body FROM reading_buckets WHERE opened_at < ? ORDER BY time_unix", (opened_before,)
    ) as cursor:
        for when, body in await cursor.fetchall():
            if body not in seen:  # the min, max and last reading may be one and the same
                seen.add(body)
                events.append((when, parse_event(_json(body))))
    async with db.execute(
        "SELECT epc, reader, antenna, location, first_seen, last_seen, last_unix, count, rssi "
        "FROM tag_buckets WHERE opened_at < ?",
        (opened_before,),
    ) as cursor:
        for epc, reader, antenna, location, first, last, last_unix, count, rssi in await cursor.fetchall():
            observation = TagObservation(
                epc=epc,
                reader=reader,
                antenna=antenna,
                location=location,
                first_seen=datetime.fromisoformat(first),
                last_seen=datetime.fromisoformat(last),
                count=count,
                rssi=rssi,
            )
            events.append((last_unix, observation))
    async with db.execute(
        "SELECT at_unix, body FROM health_buckets WHERE opened_at < ?", (opened_before,)
    ) as cursor:
        events.extend((when, parse_event(_json(body))) for when, body in await cursor.fetchall())
    for table in ("reading_buckets", "tag_buckets", "health_buckets"):
        await db.execute(f"DELETE FROM {table} WHERE opened_at < ?", (opened_before,))
    events.sort(key=lambda item: item[0])
    return [event for _, event in events]


def _json(body: str) -> dict[str, object]:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("bucket body is not an object")
    return data
