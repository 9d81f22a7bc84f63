"""A read-only status report of a (possibly running) edge, from its SQLite database.

Opened with ``file:...?mode=ro``: the report never writes, never takes write locks, and works next
to the running agent (WAL lets readers and the one writer proceed concurrently).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from edge.errors import EdgeStatusUnavailable
from edge.rejects import recent_rejects

__all__ = ["EdgeStatusUnavailable", "read_status"]


def _connect_ro(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise EdgeStatusUnavailable(f"no edge database at {db_path} (has the edge agent run yet?)")
    try:
        return sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise EdgeStatusUnavailable(f"cannot open {db_path} read-only: {exc}") from exc


def read_status(db_path: Path | str) -> dict[str, Any]:
    """Counters, stock on hand, latest sensor values, open alarms and the sync backlog."""
    path = Path(db_path)
    conn = _connect_ro(path)
    try:
        return _report(conn, time.time())
    except sqlite3.Error as exc:
        raise EdgeStatusUnavailable(f"{path} is not a readable edge database: {exc}") from exc
    finally:
        conn.close()


def _report(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    by_location = dict(
        conn.execute("SELECT location, COUNT(*) FROM on_hand GROUP BY location ORDER BY location").fetchall()
    )
    pending, oldest = conn.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
    sensors = [
        {"sensor_id": s, "quantity": q, "value": v, "unit": u, "time": t, "zone": z}
        for s, q, v, u, t, z in conn.execute(
            "SELECT sensor_id, quantity, value, unit, time, zone FROM sensor_latest "
            "ORDER BY sensor_id, quantity"
        )
    ]
    alarms = [
        {"zone": z, "sensor_id": s, "rule": r, "value": v, "limit": lim, "raised_at": at}
        for z, s, r, v, lim, at in conn.execute(
            "SELECT zone, sensor_id, rule, value, limit_value, raised_at FROM alarms ORDER BY raised_at"
        )
    ]
    return {
        "tag_reads": int(counters.get("tag_reads", 0)),
        "items_on_hand": sum(by_location.values()),
        "items_by_location": by_location,
        "sensors": sensors,
        "alarms_open": alarms,
        "pending_events": int(pending),
        "incarnation": _incarnation(conn),
        "acked_through": int(meta.get("acked_through", 0)),
        "last_seq": int(meta.get("last_seq", 0)),
        "sync_lag_s": max(0.0, now - oldest) if oldest is not None else 0.0,
        # Over its budget the outbox downsamples telemetry: say so, it is a degraded site.
        "degraded": bool(meta.get("degraded", 0)),
        "telemetry_downsampled": int(counters.get("telemetry_downsampled", 0)),
        "clock_skew_s": int(meta.get("clock_skew_ms", 0)) / 1000,
        "counters": counters,
        "devices": _devices(counters),
        # The last poison messages (undecodable, oversized), dropped and acknowledged: for diagnosis.
        "rejected_payloads": recent_rejects(conn),
    }


def _incarnation(conn: sqlite3.Connection) -> str | None:
    """The database's incarnation (edge.incarnation); None before the agent first opened it."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'incarnation'").fetchone():
        return None
    row = conn.execute("SELECT id FROM incarnation LIMIT 1").fetchone()
    return (str(row[0]) or None) if row else None


def _devices(counters: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per-device totals from the agent's ``device.<id>.<field>`` counters (ids may contain dots)."""
    devices: dict[str, dict[str, int]] = {}
    for name, value in counters.items():
        if not name.startswith("device."):
            continue
        device, _, field = name[len("device.") :].rpartition(".")
        if device:
            devices.setdefault(device, {"frames_ok": 0, "frames_bad": 0, "reconnects": 0})[field] = int(value)
    return dict(sorted(devices.items()))
