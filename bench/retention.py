"""Readings retention (cloud.retention): roll-up speed, and ingest while the roll-up runs.

Run: ``.venv/bin/python bench/retention.py [--zones 40] [--days 30] [--engines sqlite,postgresql]``.

For each engine, on a fresh database: ``zones`` sensors report one temperature every 5 minutes
for ``days`` days (ingested through the ingest service in 1000-reading batches, as edges send
them). Then one edge keeps sending 200-reading batches of current readings, first alone (quiet),
then while the retention job folds every bucket older than one day into the roll-up (one bucket
per transaction; on PostgreSQL the weekly partitions behind the horizon are dropped). Printed per
engine: readings folded per second, the roll-up's wall time, and ingest batch p50/p99 quiet and
during the roll-up; the last line is one JSON object.

PostgreSQL comes from ``SHELFSENSE_TEST_PG_URL`` or ``postgresql://postgres@127.0.0.1:5432/postgres``;
a temporary database is created there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cloud.admin import create_edge_async
from cloud.core import db
from cloud.core.migrate import upgrade_to_head
from cloud.ingest.service import ingest_batch
from cloud.retention import partitions
from cloud.retention.job import run_once
from shelfsense.config import RetentionSettings
from shelfsense.contract import Batch

STEP_S = 300


class Edge:
    def __init__(self, engine: Any, edge_id: str) -> None:
        self.engine, self.edge_id, self.seq = engine, edge_id, 1

    async def send(self, readings: list[dict[str, Any]]) -> float:
        body = {
            "v": 1,
            "edge_id": self.edge_id,
            "created_at": datetime.now(UTC).isoformat(),
            "events": [{"seq": self.seq + k, "event": r} for k, r in enumerate(readings)],
        }
        self.seq += len(readings)
        batch = Batch.model_validate(body)
        started = time.perf_counter()
        await ingest_batch(self.engine, batch, {})
        return time.perf_counter() - started


def reading(zone: int, moment: datetime, value: float) -> dict[str, Any]:
    return {
        "kind": "sensor_reading",
        "sensor_id": f"probe-{zone}",
        "quantity": "temperature",
        "value": value,
        "unit": "degC",
        "time": moment.isoformat(),
        "zone": f"zone-{zone}",
        "flags": [],
    }


async def _live(edge: Edge, zones: int, stop: asyncio.Event, start: datetime) -> list[float]:
    """Batches of current readings back to back until ``stop``; their latencies."""
    latencies, k = [], 0
    while not stop.is_set():
        moment = start + timedelta(milliseconds=k)
        batch = [reading(z % zones, moment + timedelta(microseconds=z), 5.0) for z in range(200)]
        latencies.append(await edge.send(batch))
        k += 1
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def run_engine(url: str, zones: int, days: int) -> dict[str, float]:
    engine = db.create_engine(url)
    try:
        await upgrade_to_head(engine)
        now = datetime.now(UTC).replace(microsecond=0)
        edge = Edge(engine, (await create_edge_async(engine, "site-1", "edge-hist"))[0])
        live = Edge(engine, (await create_edge_async(engine, "site-1", "edge-live"))[0])
        first = now - timedelta(days=days)
        # PostgreSQL: weekly partitions over the history too, so retention drops them whole.
        await partitions.ensure_ahead(engine, first, days // 7 + 2)
        rows = [
            reading(z, first + timedelta(seconds=STEP_S * k), 4.0 + (k % 7) / 2)
            for k in range(days * 86400 // STEP_S)
            for z in range(zones)
        ]
        for start in range(0, len(rows), 1000):
            await edge.send(rows[start : start + 1000])
        stop = asyncio.Event()
        quiet_task = asyncio.create_task(_live(live, zones, stop, now))
        await asyncio.sleep(5)
        stop.set()
        quiet = await quiet_task
        stop = asyncio.Event()
        during_task = asyncio.create_task(_live(live, zones, stop, now + timedelta(hours=1)))
        settings = RetentionSettings(readings_days=1, max_buckets_per_run=100_000, partitions_ahead=2)
        started = time.perf_counter()
        run = await run_once(engine, settings, now=now)
        rolled_s = time.perf_counter() - started
        stop.set()
        during = await during_task
        assert run.rollup is not None
        return {
            "readings": len(rows),
            "rolled_readings": run.rollup.readings,
            "buckets": run.rollup.buckets,
            "rollup_s": round(rolled_s, 2),
            "rolled_per_s": round(run.rollup.readings / rolled_s),
            "partitions_dropped": len(run.dropped),
            "ingest_quiet_p50_ms": round(_pct(quiet, 0.5), 1),
            "ingest_quiet_p99_ms": round(_pct(quiet, 0.99), 1),
            "ingest_during_p50_ms": round(_pct(during, 0.5), 1),
            "ingest_during_p99_ms": round(_pct(during, 0.99), 1),
            "ingest_during_batches": len(during),
            "ingest_quiet_mean_ms": round(statistics.fmean(quiet) * 1000, 1),
        }
    finally:
        await engine.dispose()


async def _pg(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", type=int, default=40)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for engine in args.engines.split(","):
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{folder}/cloud.db"
                results["sqlite"] = asyncio.run(run_engine(url, args.zones, args.days))
            continue
        admin = os.environ.get("SHELFSENSE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        name = f"shelfsense_bench_{secrets.token_hex(4)}"
        asyncio.run(_pg(admin, f'CREATE DATABASE "{name}"'))
        parts = urlsplit(admin)
        try:
            url = urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
            results["postgresql"] = asyncio.run(run_engine(url, args.zones, args.days))
        finally:
            asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    for engine, figures in results.items():
        print(engine, " ".join(f"{k}={v}" for k, v in figures.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
