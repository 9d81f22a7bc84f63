"""Footprint for sizing (docs/deploy.md): disk per million sensor readings and the cloud server's
resident memory per 100k tracked items, on SQLite and on PostgreSQL.

Run: ``.venv/bin/python bench/footprint.py [--readings 200000] [--items 100000]
[--engines sqlite,postgresql]``.

A real ``shelfsense cloud serve`` (one process) runs on a fresh database. ``--readings`` sensor
readings (12 sensors, one zone, distinct times, as the edge sends them: gzip batches of 1000) are
posted; the database growth is scaled to one million readings (SQLite: main file + WAL after a
checkpoint; PostgreSQL: ``pg_database_size``; both include the ``events`` log row each reading
also gets). Then ``--items`` tagged items get a product each via ``cloud import`` and one stock
movement each; the stock listing is read through the API; the server's VmRSS growth over the whole
run is scaled to 100k items. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import secrets
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge_harness import CloudChild, toml_table

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reading(i: int) -> dict[str, Any]:
    return {
        "kind": "sensor_reading",
        "sensor_id": f"probe-{i % 12}",
        "quantity": "temperature",
        "value": 4.0 + (i % 7) * 0.1,
        "unit": "degC",
        "time": (T0 + timedelta(seconds=i)).isoformat(),
        "zone": "cold-1",
    }


def epc(i: int) -> str:
    return f"3034257BF400B7{i:010X}"


def movement(i: int) -> dict[str, Any]:
    at = (T0 + timedelta(days=30, milliseconds=i)).isoformat()
    return {"kind": "stock_movement", "epc": epc(i), "to_location": f"shelf-{i % 40}", "at": at}


def post_all(url: str, token: str, events: list[dict[str, Any]], first_seq: int) -> int:
    with httpx.Client(timeout=120) as client:
        for start in range(0, len(events), BATCH):
            chunk = events[start : start + BATCH]
            body = {
                "v": 1,
                "edge_id": "edge-1",
                "created_at": datetime.now(UTC).isoformat(),
                "events": [{"seq": first_seq + start + n, "event": e} for n, e in enumerate(chunk)],
            }
            headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
            headers["Content-Type"] = "application/json"
            response = client.post(
                f"{url}/api/v1/edges/edge-1/batches",
                content=gzip.compress(json.dumps(body).encode()),
                headers=headers,
            )
            response.raise_for_status()
    return first_seq + len(events)


async def _pg(url: str, statement: str) -> Any:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=10)
    try:
        return await connection.fetchval(statement)
    finally:
        await connection.close()


def import_items(child: CloudChild, count: int, workdir: Path) -> None:
    products, items = workdir / "products.csv", workdir / "items.csv"
    with products.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name"])
        writer.writerows([f"SKU-{n}", f"product {n}"] for n in range(100))
    with items.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epc", "sku"])
        writer.writerows([epc(i), f"SKU-{i % 100}"] for i in range(count))
    for kind, path in (("products", products), ("items", items)):
        argv = ["cloud", "import", str(path), "--kind", kind, "--config", str(child.config)]
        subprocess.run(
            [sys.executable, "-m", "shelfsense", *argv],
            cwd=child.workdir,
            check=True,
            capture_output=True,
            timeout=600,
        )


def measure(engine: str, readings: int, items: int, workdir: Path) -> dict[str, float]:
    child = CloudChild(workdir / engine)
    pg_admin = pg_url = None
    if engine == "postgresql":
        pg_admin = DEFAULT_PG_ADMIN_URL
        name = f"shelfsense_fp_{secrets.token_hex(4)}"
        asyncio.run(_pg(pg_admin, f'CREATE DATABASE "{name}"'))
        parts = urlsplit(pg_admin)
        pg_url = urlunsplit(("postgresql", parts.netloc, f"/{name}", "", ""))
        db_url = urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", "", ""))
        child.config.write_text(
            toml_table("cloud", {"host": "127.0.0.1", "port": child.port, "db_url": db_url})
        )

    def size_mb() -> float:
        if pg_url is not None:
            return float(asyncio.run(_pg(pg_url, "SELECT pg_database_size(current_database())"))) / 2**20
        conn = sqlite3.connect(child.db_path, timeout=60)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        wal = child.db_path.with_name(child.db_path.name + "-wal")
        return (child.db_path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 2**20

    try:
        token = child.register_edge("edge-1")
        child.start()
        assert child.process is not None
        rss_start, size_start = rss_mb(child.process.pid), size_mb()
        seq = post_all(child.url, token, [reading(i) for i in range(readings)], 1)
        size_readings = size_mb() - size_start
        import_items(child, items, workdir / engine)
        post_all(child.url, token, [movement(i) for i in range(items)], seq)
        with httpx.Client(timeout=120) as client:
            headers = {"Authorization": f"Bearer {token}"}
            client.get(f"{child.url}/api/v1/stock", params={"limit": 1000}, headers=headers)
        rss_end = rss_mb(child.process.pid)
    finally:
        child.stop()
        if pg_admin is not None and pg_url is not None:
            asyncio.run(_pg(pg_admin, f'DROP DATABASE IF EXISTS "{urlsplit(pg_url).path[1:]}" WITH (FORCE)'))
    return {
        "disk_mb_per_million_readings": round(size_readings * 1_000_000 / readings, 1),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_per_100k_items": round((rss_end - rss_start) * 100_000 / items, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="shelfsense-footprint-") as tmp:
        for engine in args.engines.split(","):
            figures = measure(engine, args.readings, args.items, Path(tmp))
            print(f"{engine}: {figures}", file=sys.stderr)
            result.update({f"{engine}_{k}": v for k, v in figures.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
