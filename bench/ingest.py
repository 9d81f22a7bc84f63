"""Sustained HTTP ingest throughput of the cloud, on SQLite and on PostgreSQL.

Run: ``.venv/bin/python bench/ingest.py [--seconds S] [--edges E] [--batch N] [--engines sqlite,postgresql]
[--mix site|readings]``.

For each engine a real ``uvicorn`` server runs in a child process (``shelfsense cloud serve``) on a
fresh database; E edges are registered and each POSTs gzip batches of N events back to back, one
request in flight per edge, exactly like the edge sync loop (the bodies are built before the clock
starts, so the client measures the server). ``--mix site`` (the default) is what a site produces:
tag observations, sensor readings, movements, passages and a little device health. ``--mix
readings`` is only sensor readings, as ``bench/mqtt_to_cloud.py`` produces them: 50 sensors
without a zone, each message a temperature and a humidity, serialised by the contract models like
the edge does. Reported per engine: events/s over the measured period, request latency percentiles
and the server process's CPU time per event (/proc utime + stime, so independent of other load on
the machine); the last line is one JSON object with ``sqlite_events_per_s``,
``postgres_events_per_s``, ``p99_ms`` (SQLite, the embedded default) and
``<engine>_server_cpu_us_per_event`` for scripts to read.

PostgreSQL comes from ``SHELFSENSE_TEST_PG_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``;
a temporary database is created there and dropped afterwards (skipped, with a note, when no
server answers).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.admin import create_edge, create_user
from shelfsense.contract import SensorReading

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event(i: int) -> dict[str, Any]:
    """Event ``i`` of a deterministic, site-like mix."""
    t = (T0 + timedelta(milliseconds=50 * i)).isoformat()
    epc = f"3034257BF400B78{i % 50_000:09X}"
    kind = i % 20
    if kind < 10:
        return {
            "kind": "tag_observation",
            "epc": epc,
            "reader": f"uhf-{i % 8}",
            "antenna": 1,
            "rssi": -50.0 - i % 30,
            "first_seen": t,
            "last_seen": t,
            "count": 1 + i % 5,
            "location": f"shelf-{i % 40}",
        }
    if kind < 16:
        return {
            "kind": "sensor_reading",
            "sensor_id": f"probe-{i % 12}",
            "quantity": "temperature" if kind % 2 else "humidity",
            "value": 4.0 + (i % 7) * 0.1 if kind % 2 else 60.0,
            "unit": "degC" if kind % 2 else "%RH",
            "time": t,
            "zone": "cold-1",
        }
    if kind < 18:
        return {
            "kind": "stock_movement",
            "epc": epc,
            "from_location": None,
            "to_location": f"shelf-{i % 40}",
            "at": t,
        }
    if kind < 19:
        return {"kind": "portal_passage", "epc": epc, "portal": "dock-1", "direction": "in", "at": t}
    return {"kind": "device_health", "device_id": f"uhf-{i % 8}", "connected": True, "frames_ok": i, "at": t}


READING_SENSORS = 50


def reading_json(i: int) -> str:
    """Reading ``i`` as the edge's outbox stores and sends it (``model_dump_json``, times in "Z").

    Message ``i // 2`` of sensor ``s{(i // 2) % 50}``: even ``i`` its temperature, odd its humidity.
    """
    message = i // 2
    sensor, at = f"s{message % READING_SENSORS}", T0 + timedelta(microseconds=137 * message)
    if i % 2 == 0:
        value = -50 + (message % 10_000) * 0.01
        reading = SensorReading(sensor_id=sensor, quantity="temperature", value=value, unit="degC", time=at)
    else:
        reading = SensorReading(sensor_id=sensor, quantity="humidity", value=50.0, unit="%RH", time=at)
    return reading.model_dump_json()


def bodies(edge_id: str, batches: int, size: int, mix: str) -> list[bytes]:
    out = []
    for b in range(batches):
        first = b * size
        if mix == "readings":
            # Built like edge.sync.batch_json: the stored event JSON spliced in as is.
            head = json.dumps({"v": 1, "edge_id": edge_id, "created_at": T0.isoformat()})[:-1]
            items = ",".join(
                f'{{"seq":{first + k + 1},"event":{reading_json(first + k)}}}' for k in range(size)
            )
            raw = f'{head},"events":[{items}]}}'.encode()
        else:
            events = [{"seq": first + k + 1, "event": event(first + k)} for k in range(size)]
            body = {"v": 1, "edge_id": edge_id, "created_at": T0.isoformat(), "events": events}
            raw = json.dumps(body).encode()
        out.append(gzip.compress(raw, compresslevel=1))
    return out


@dataclass
class Result:
    events_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    # Events per CPU-second the server process used: independent of other load on the machine.
    events_per_server_cpu_s: float = 0.0
    elapsed: float = 0.0
    server_cpu_us_per_event: float = 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``shelfsense cloud serve`` in a child process."""

    def __init__(self, db_url: str, port: int, workdir: Path) -> None:
        self.port = port
        env = {
            **os.environ,
            "SHELFSENSE_CLOUD__MAX_BODY_BYTES": str(64 * 1024 * 1024),
            # The events are dated from 2025-01-01 (T0): believe them, so every one is projected.
            "SHELFSENSE_CLOUD__MAX_EVENT_AGE_S": str(100 * 365 * 86400),
        }
        self.log = (workdir / f"server-{port}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shelfsense", "cloud", "serve", "--db", db_url, "--port", str(port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.process.poll() is not None:
                    raise SystemExit(
                        f"cloud server exited with {self.process.returncode}; see {self.log.name}"
                    )
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise SystemExit("cloud server did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


async def drive(
    port: int, tokens: dict[str, str], payloads: dict[str, list[bytes]], seconds: float, size: int
) -> Result:
    latencies: list[float] = []
    sent = 0
    deadline = 0.0
    exhausted: list[str] = []

    async def edge_loop(client: httpx.AsyncClient, edge_id: str) -> None:
        nonlocal sent
        headers = {
            "Authorization": f"Bearer {tokens[edge_id]}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        }
        for body in payloads[edge_id]:
            if time.perf_counter() >= deadline:
                return
            start = time.perf_counter()
            response = await client.post(f"/api/v1/edges/{edge_id}/batches", content=body, headers=headers)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"ingest failed: {response.status_code} {response.text[:200]}")
            sent += response.json()["accepted"]
        exhausted.append(edge_id)  # measured time stays honest: the rate uses the real elapsed time

    limits = httpx.Limits(max_connections=len(tokens) + 2)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(edge_loop(client, e) for e in tokens))
        elapsed = time.perf_counter() - start
    if exhausted and seconds < 60:
        print(
            f"note: {len(exhausted)} edges ran out of prepared batches before {seconds} s (raise --prepare)"
        )
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    result = Result(sent / elapsed, len(latencies), statistics.median(latencies) * 1000, p99 * 1000)
    result.elapsed = elapsed
    return result


def run_engine(db_url: str, args: argparse.Namespace, workdir: Path) -> Result:
    edges = [f"edge-{n}" for n in range(args.edges)]
    tokens = {e: create_edge(db_url, "site-1", e)[1] for e in edges}
    create_user(db_url, "bench", "viewer")
    per_edge = int(args.prepare)
    payloads = {e: bodies(e, per_edge, args.batch, args.mix) for e in edges}
    port = free_port()
    server = Server(db_url, port, workdir)
    try:
        asyncio.run(server.wait_ready())
        asyncio.run(drive(port, tokens, {e: p[:2] for e, p in payloads.items()}, 60, args.batch))  # warm-up
        rest = {e: p[2:] for e, p in payloads.items()}
        cpu_before = cpu_seconds(server.process.pid)
        result = asyncio.run(drive(port, tokens, rest, args.seconds, args.batch))
        cpu = cpu_seconds(server.process.pid) - cpu_before
        stored = result.events_per_s * result.elapsed
        result.events_per_server_cpu_s = stored / cpu if cpu else 0.0
        result.server_cpu_us_per_event = 1e6 * cpu / stored if stored else 0.0
        return result
    finally:
        server.stop()


async def _pg(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def describe(name: str, result: Result) -> str:
    return (
        f"{name:<11} {result.events_per_s:10.0f} events/s  {result.requests} requests  "
        f"p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms  "
        f"server CPU {result.server_cpu_us_per_event:.1f} us/event "
        f"({result.events_per_server_cpu_s:.0f} events per server CPU-second)"
    )


def fields(prefix: str, result: Result) -> dict[str, Any]:
    return {
        f"{prefix}_events_per_s": round(result.events_per_s),
        f"{prefix}_p50_ms": round(result.p50_ms, 1),
        f"{prefix}_p99_ms": round(result.p99_ms, 1),
        f"{prefix}_events_per_server_cpu_s": round(result.events_per_server_cpu_s),
        f"{prefix}_server_cpu_us_per_event": round(result.server_cpu_us_per_event, 1),
    }


def run_postgres(args: argparse.Namespace, workdir: Path) -> Result | None:
    admin_url = os.environ.get("SHELFSENSE_TEST_PG_URL", DEFAULT_PG_ADMIN_URL)
    name = f"shelfsense_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg(admin_url, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        print(f"postgresql: skipped, no server at {admin_url} ({exc})")
        return None
    parts = urlsplit(admin_url)
    url = urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    try:
        return run_engine(url, args, workdir)
    finally:
        asyncio.run(_pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured period per engine")
    parser.add_argument("--edges", type=int, default=4, help="concurrent edges (one request in flight each)")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch (edge default 1000)")
    parser.add_argument("--prepare", type=int, default=80, help="batches prepared per edge")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument(
        "--mix", choices=("site", "readings"), default="site", help="site-like mix, or sensor readings only"
    )
    args = parser.parse_args()

    report: dict[str, Any] = {
        "edges": args.edges,
        "batch": args.batch,
        "seconds": args.seconds,
        "mix": args.mix,
    }
    with tempfile.TemporaryDirectory(prefix="shelfsense-bench-") as tmp:
        workdir = Path(tmp)
        report |= {"sqlite_events_per_s": None, "postgres_events_per_s": None, "p99_ms": None}
        if "sqlite" in args.engines:
            result = run_engine(f"sqlite+aiosqlite:///{workdir / 'cloud.db'}", args, workdir)
            print(describe("sqlite:", result))
            report |= fields("sqlite", result) | {"p99_ms": round(result.p99_ms, 1)}
        if "postgresql" in args.engines:
            pg = run_postgres(args, workdir)
            if pg is not None:
                print(describe("postgresql:", pg))
                report |= fields("postgres", pg)
                if report["p99_ms"] is None:
                    report["p99_ms"] = round(pg.p99_ms, 1)
        report["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
