"""A reference site at a real warehouse's size: every read the page and an ERP integrator use, and
ingest, quiet and under heavy concurrent reads, on SQLite and on PostgreSQL.

Run: ``.venv/bin/python bench/site_scale.py [--items 100000] [--engines sqlite,postgresql]
[--requests 10] [--endpoint-cap-s 30] [--load-seconds 15]``.

The site is built only through the public interfaces, as a user and their edges would: master data by
``POST /api/v1/master/{kind}/import`` (CSV), stock and sensor history by the ingest API (one edge per
site posting gzip batches, exactly like the edge sync loop). Defaults (issue 18's reference site):
2 sites, 50 locations, 2,000 products, 10,000 lots, 100,000 items on hand, 40 zones (cold rooms) with
30 days of temperature readings at one per 5 minutes (345,600 readings); ``--items 1000000`` for a
large site.

Measured, per engine:
- every read: p50/p99 latency and response size over ``--requests`` requests (fewer when one endpoint
  has used ``--endpoint-cap-s``; a request over ``--timeout-s`` counts as a timeout);
- ingest events/s and batch p99, quiet and while 4 clients hammer the heaviest reads;
- ``/healthz`` p99, quiet and under that load;
- the server's RSS at the end.
The client runs on the same 2-core machine as the server; its own CPU use is part of the load.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import DEFAULT_PG_ADMIN_URL, Server, _pg, free_port

from cloud.admin import create_edge, create_user
from cloud.masterdata import tables as masterdata_db

SITES = 2
LOCATIONS = 50
ZONES = 40  # the first 40 locations are cold rooms with a probe each
READING_STEP = timedelta(minutes=5)
BATCH = 2000
READS: dict[str, str] = {  # name -> path with query, as the page and an ERP integrator ask
    "stock": "/api/v1/stock?limit=100",
    "stock_by_location": "/api/v1/stock?site=site-1&location=loc-1-03&limit=100",
    "movements": "/api/v1/movements?limit=100",
    "lots": "/api/v1/lots?limit=50",
    "fefo": "/api/v1/fefo?limit=50",
    "alerts": "/api/v1/alerts?limit=100",
    "stocktakes": "/api/v1/stocktakes?limit=50",
    "kpis": "/api/v1/kpis",
    "proposals": "/api/v1/proposals?limit=100",
    "epcis_events": "/api/v1/epcis/events?limit=100",
    "summary": "/api/v1/summary",
    "sensors": "/api/v1/sensors?limit=100",
    "items": "/api/v1/items?limit=100",
}
HEAVY = ("lots", "fefo", "kpis", "epcis_events")


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    timeouts: int = 0

    def p(self, q: float) -> float | None:
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))], 1)

    def summary(self) -> dict[str, Any]:
        return {
            "p50_ms": self.p(0.5),
            "p99_ms": self.p(0.99),
            "bytes": int(statistics.median(self.sizes)) if self.sizes else None,
            "n": len(self.seconds),
            "timeouts": self.timeouts,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def epc_of(n: int) -> str:
    return f"E2{n:022X}"


def master_csv(args: argparse.Namespace) -> dict[str, list[str]]:
    """The site's master data as the four import CSVs (items split in chunks of 100k rows)."""
    products = ["sku,name,shelf_life_days,storage_temp_min_c,storage_temp_max_c"]
    products += [f"SKU-{p:05d},Product {p},{60 + p % 300},2,8" for p in range(args.products)]
    locations = ["site_id,location_id,kind,name,rfid_coverage"]
    for s in range(1, SITES + 1):
        for loc in range(LOCATIONS // SITES):
            kind = "cold_room" if loc < ZONES // SITES else "shelf"
            locations.append(f"site-{s},loc-{s}-{loc:02d},{kind},Location {loc},true")
    today = datetime.now(UTC).date()
    lots = ["sku,lot_code,expiry"]
    lots += [
        f"SKU-{lot % args.products:05d},LOT-{lot:06d},{today + timedelta(days=10 + lot % 400)}"
        for lot in range(args.lots)
    ]
    items = []
    for start in range(0, args.items, 100_000):
        chunk = ["epc,sku,lot_code"]
        for n in range(start, min(args.items, start + 100_000)):
            lot = n % args.lots
            chunk.append(f"{epc_of(n)},SKU-{lot % args.products:05d},LOT-{lot:06d}")
        items.append("\n".join(chunk))
    return {
        "products": ["\n".join(products)],
        "locations": ["\n".join(locations)],
        "lots": ["\n".join(lots)],
        "items": items,
    }


def site_events(site: int, args: argparse.Namespace, now: datetime) -> list[dict[str, Any]]:
    """One site's history as its edge would send it: every item received into a location, and each
    of the site's zones' probe readings for ``--days`` days."""
    start = now - timedelta(days=args.days)
    events: list[dict[str, Any]] = []
    for n in range(site - 1, args.items, SITES):
        at = start + timedelta(seconds=(n * 7) % int(args.days * 86400 - 3600))
        location = f"loc-{site}-{n % (LOCATIONS // SITES):02d}"
        events.append(
            {"kind": "stock_movement", "epc": epc_of(n), "to_location": location, "at": at.isoformat()}
        )
    steps = int(timedelta(days=args.days) / READING_STEP)
    for zone in range(ZONES // SITES):
        for k in range(steps):
            at = start + k * READING_STEP
            value = 5.0 + 1.5 * ((k % 288) / 288.0) + (4.0 if k % 2000 == 1000 else 0.0)  # rare excursions
            events.append(
                {
                    "kind": "sensor_reading",
                    "sensor_id": f"probe-{site}-{zone:02d}",
                    "quantity": "temperature",
                    "value": round(value, 2),
                    "unit": "degC",
                    "time": at.isoformat(),
                    "zone": f"loc-{site}-{zone:02d}",
                }
            )
    events.sort(key=lambda e: e.get("at") or e["time"])
    return events


def batch_body(edge_id: str, first_seq: int, events: list[dict[str, Any]]) -> bytes:
    body = {
        "v": 1,
        "edge_id": edge_id,
        "created_at": datetime.now(UTC).isoformat(),
        "events": [{"seq": first_seq + k, "event": e} for k, e in enumerate(events)],
    }
    return gzip.compress(json.dumps(body).encode(), compresslevel=1)


@dataclass
class Edge:
    edge_id: str
    token: str
    next_seq: int = 1

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        }

    async def send(self, client: httpx.AsyncClient, events: list[dict[str, Any]]) -> float:
        body = batch_body(self.edge_id, self.next_seq, events)
        start = time.perf_counter()
        response = await client.post(
            f"/api/v1/edges/{self.edge_id}/batches", content=body, headers=self.headers()
        )
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise SystemExit(f"ingest failed: {response.status_code} {response.text[:300]}")
        self.next_seq += len(events)
        return elapsed


async def build_site(
    client: httpx.AsyncClient, admin: str, edges: list[Edge], args: argparse.Namespace
) -> float:
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "text/csv"}
    for kind, chunks in master_csv(args).items():
        for text in chunks:
            response = await client.post(
                f"/api/v1/master/{kind}/import", content=text.encode(), headers=headers
            )
            if response.status_code != 200:
                raise SystemExit(f"import {kind} failed: {response.status_code} {response.text[:300]}")
    now = datetime.now(UTC) - timedelta(minutes=1)

    async def feed(site: int, edge: Edge) -> None:
        events = site_events(site, args, now)
        for start in range(0, len(events), BATCH):
            await edge.send(client, events[start : start + BATCH])

    await asyncio.gather(*(feed(site, edge) for site, edge in enumerate(edges, start=1)))
    return time.perf_counter() - started


async def measure_reads(
    client: httpx.AsyncClient, token: str, args: argparse.Namespace
) -> dict[str, Timings]:
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, Timings] = {}
    for name, path in READS.items():
        timings = results.setdefault(name, Timings())
        cap = time.perf_counter() + args.endpoint_cap_s
        for _ in range(args.requests):
            if time.perf_counter() > cap:
                break
            await timed_get(client, path, headers, timings, args.timeout_s)
    return results


async def timed_get(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], timings: Timings, timeout_s: float
) -> None:
    start = time.perf_counter()
    try:
        response = await client.get(path, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        timings.timeouts += 1
        return
    timings.seconds.append(time.perf_counter() - start)
    timings.sizes.append(len(response.content))
    timings.statuses[response.status_code] = timings.statuses.get(response.status_code, 0) + 1


def reading_batch(site: int, at: datetime, count: int) -> list[dict[str, Any]]:
    """Fresh readings (newer than the history) of the site's zones, ``count`` of them."""
    zones = ZONES // SITES
    return [
        {
            "kind": "sensor_reading",
            "sensor_id": f"probe-{site}-{k % zones:02d}",
            "quantity": "temperature",
            "value": 5.0,
            "unit": "degC",
            "time": (at + timedelta(milliseconds=k // zones)).isoformat(),
            "zone": f"loc-{site}-{k % zones:02d}",
        }
        for k in range(count)
    ]


async def ingest_for(
    client: httpx.AsyncClient, edges: list[Edge], seconds: float, clock: list[datetime]
) -> Timings:
    """Both edges post reading batches back to back for ``seconds``; returns batch latencies (the
    events/s is ``len(seconds) * BATCH / elapsed``)."""
    timings = Timings()
    deadline = time.perf_counter() + seconds

    async def loop(site: int, edge: Edge) -> None:
        while time.perf_counter() < deadline:
            clock[0] += timedelta(seconds=1)
            timings.seconds.append(await edge.send(client, reading_batch(site, clock[0], BATCH)))

    await asyncio.gather(*(loop(site, edge) for site, edge in enumerate(edges, start=1)))
    return timings


async def health_probe(client: httpx.AsyncClient, stop: asyncio.Event, timings: Timings) -> None:
    while not stop.is_set():
        await timed_get(client, "/healthz", {}, timings, 30)
        await asyncio.sleep(0.1)


async def hammer(
    client: httpx.AsyncClient, token: str, stop: asyncio.Event, worker: int, timeout_s: float, seen: Timings
) -> int:
    """One heavy reader, back to back; a 503 (busy) is honoured as a polite client would: it waits
    the answer's Retry-After (counted in ``seen.statuses``)."""
    headers = {"Authorization": f"Bearer {token}"}
    done, k = 0, worker
    while not stop.is_set():
        mine = Timings()
        await timed_get(client, READS[HEAVY[k % len(HEAVY)]], headers, mine, timeout_s)
        seen.timeouts += mine.timeouts
        for status, n in mine.statuses.items():
            seen.statuses[status] = seen.statuses.get(status, 0) + n
        if 503 in mine.statuses:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
            continue
        done, k = done + 1, k + 1
    return done


def events_per_s(timings: Timings, seconds: float) -> float:
    return round(len(timings.seconds) * BATCH / seconds) if seconds else 0.0


async def run_site(db_url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    # The admin helpers run their own event loop: call them from a thread.
    admin = await asyncio.to_thread(create_user, db_url, "bench-admin", "admin")
    edges = []
    for s in range(1, SITES + 1):
        _, token = await asyncio.to_thread(create_edge, db_url, f"site-{s}", f"edge-{s}")
        edges.append(Edge(f"edge-{s}", token))
    port = free_port()
    server = Server(db_url, port, workdir)
    out: dict[str, Any] = {}
    try:
        await server.wait_ready()
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
        ) as client:
            out["build_s"] = round(await build_site(client, admin, edges, args), 1)
            print(f"  site built in {out['build_s']} s", flush=True)
            out["read_model_catchup_s"] = round(await wait_read_model(db_url), 1)
            print(f"  lot read model caught up {out['read_model_catchup_s']} s later", flush=True)
            reads = await measure_reads(client, admin, args)
            out["reads"] = {name: t.summary() for name, t in reads.items()}
            for name, t in reads.items():
                s = t.summary()
                print(
                    f"  {name:<18} p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  {s['bytes']} B  n={s['n']}"
                    f"  timeouts={s['timeouts']}  {s['statuses']}",
                    flush=True,
                )
            clock = [datetime.now(UTC)]
            quiet_health = Timings()
            stop = asyncio.Event()
            probe = asyncio.create_task(health_probe(client, stop, quiet_health))
            start = time.perf_counter()
            quiet = await ingest_for(client, edges, args.load_seconds, clock)
            quiet_elapsed = time.perf_counter() - start
            stop.set()
            await probe
            loaded_health, stop = Timings(), asyncio.Event()
            seen = Timings()
            readers = [
                asyncio.create_task(hammer(client, admin, stop, w, args.timeout_s, seen)) for w in range(4)
            ]
            probe = asyncio.create_task(health_probe(client, stop, loaded_health))
            start = time.perf_counter()
            loaded = await ingest_for(client, edges, args.load_seconds, clock)
            loaded_elapsed = time.perf_counter() - start
            stop.set()
            heavy_done = sum(await asyncio.gather(*readers))
            await probe
        out |= {
            "ingest_quiet_events_per_s": events_per_s(quiet, quiet_elapsed),
            "ingest_quiet_batch_p99_ms": quiet.p(0.99),
            "ingest_loaded_events_per_s": events_per_s(loaded, loaded_elapsed),
            "ingest_loaded_batch_p99_ms": loaded.p(0.99),
            "healthz_quiet_p99_ms": quiet_health.p(0.99),
            "healthz_loaded_p99_ms": loaded_health.p(0.99),
            "heavy_reads_completed_under_load": heavy_done,
            "heavy_reads_statuses_under_load": seen.statuses,
            "server_rss_mb": rss_mb(server.process.pid),
        }
        for key in (
            "ingest_quiet_events_per_s",
            "ingest_quiet_batch_p99_ms",
            "ingest_loaded_events_per_s",
            "ingest_loaded_batch_p99_ms",
            "healthz_quiet_p99_ms",
            "healthz_loaded_p99_ms",
            "heavy_reads_completed_under_load",
            "heavy_reads_statuses_under_load",
            "server_rss_mb",
        ):
            print(f"  {key}: {out[key]}", flush=True)
        return out
    finally:
        server.stop()


async def wait_read_model(db_url: str, deadline_s: float = 1800.0) -> float:
    """Seconds until the server's catch-up job has a row for every lot and no mark is due."""
    from sqlalchemy import func, select

    from cloud.coldchain.evidence_tables import lot_evidence, lot_evidence_marks
    from cloud.core import db

    engine = db.create_engine(db_url)
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < deadline_s:
            async with engine.connect() as conn:
                lots = await conn.scalar(select(func.count()).select_from(masterdata_db.lots))
                rows = await conn.scalar(select(func.count()).select_from(lot_evidence))
                due = await conn.scalar(
                    select(func.count())
                    .select_from(lot_evidence_marks)
                    .where(lot_evidence_marks.c.due_at <= db.utcnow())
                )
            if rows == lots and not due:
                break
            await asyncio.sleep(1.0)
        return time.perf_counter() - start
    finally:
        await engine.dispose()


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def run_postgres(args: argparse.Namespace, workdir: Path) -> dict[str, Any] | None:
    import os

    admin_url = os.environ.get("SHELFSENSE_TEST_PG_URL", DEFAULT_PG_ADMIN_URL)
    name = f"shelfsense_site_{secrets.token_hex(4)}"
    try:
        await _pg(admin_url, f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError) as exc:
        print(f"postgresql: skipped, no server at {admin_url} ({exc})")
        return None
    parts = urlsplit(admin_url)
    url = urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    try:
        return await run_site(url, args, workdir)
    finally:
        await _pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "items": args.items,
        "products": args.products,
        "lots": args.lots,
        "days": args.days,
        "built_on": str(date.today()),
    }
    with tempfile.TemporaryDirectory(prefix="shelfsense-site-") as tmp:
        workdir = Path(tmp)
        if "sqlite" in args.engines:
            print("sqlite:", flush=True)
            report["sqlite"] = await run_site(f"sqlite+aiosqlite:///{workdir / 'cloud.db'}", args, workdir)
        if "postgresql" in args.engines:
            print("postgresql:", flush=True)
            report["postgresql"] = await run_postgres(args, workdir)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--lots", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30, help="days of sensor history per zone")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=10, help="requests per read endpoint")
    parser.add_argument("--endpoint-cap-s", type=float, default=30.0, help="time cap per read endpoint")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="a read slower than this is a timeout")
    parser.add_argument("--load-seconds", type=float, default=15.0, help="each ingest phase's length")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(json.dumps(report, separators=(",", ":")))


if __name__ == "__main__":
    main()
