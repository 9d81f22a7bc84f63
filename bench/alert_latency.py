"""Alert latency end to end: a reading POSTed to a real cloud -> signed webhook received.

Run: ``.venv/bin/python bench/alert_latency.py [--alerts N] [--workers W] [--db URL] [--no-dead-channel]``.

The cloud runs as its own process (``uvicorn`` via :func:`cloud.main.serve`, configured from a
TOML file with ``[cloud.coldchain]`` channels), on SQLite by default or ``--db`` (e.g. a
PostgreSQL URL). This process plays the edges and the alert receiver: a real ``uvicorn`` webhook
receiver (in a thread) verifies every HMAC signature, and ``W`` workers, one edge and one zone
each, repeatedly POST a batch with one reading beyond the zone's limit and wait for its ``raised``
webhook, then POST a reading back inside and wait for ``resolved`` (so the next warm reading is a
new excursion: one alert per excursion). Sender and receiver share this process's monotonic
clock; the clock starts when the POST is sent (so it includes the edge -> cloud hop, ingest and
its commit) and stops when the receiver has read and verified the webhook body.

A second, dead webhook channel (nothing listens on its port; its deliveries retry with backoff) is
configured by default, so the figures include "a failing channel never delays the others".

The last line is one JSON object with ``p50_ms``, ``p99_ms``, ``alerts`` (target: p99 < 1000 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloud.admin import create_edge_async  # noqa: E402
from cloud.core import db  # noqa: E402
from cloud.notify import verify_webhook  # noqa: E402

SECRET = "bench-secret"
SITE = "bench-site"
SERVE = (
    "import sys, pathlib, logging; logging.basicConfig(level=logging.WARNING);"
    "from shelfsense.config import load_settings; from cloud.main import build_server;"
    "build_server(load_settings(pathlib.Path(sys.argv[1])), log_level='warning').run()"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """A minimal ASGI webhook receiver; wakes the waiting worker through its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()

    def expect(self, zone: str, state: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = self.loop.create_future()
        with self.lock:
            self.waiting[zone, state] = future
        return future

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        ok = verify_webhook(
            SECRET, headers.get("x-shelfsense-timestamp", ""), body, headers.get("x-shelfsense-signature", "")
        )
        now = time.perf_counter()
        with self.lock:
            if ok:
                alert = json.loads(body)
                future = self.waiting.pop((alert["zone"], alert["state"]), None)
                if future is not None:
                    self.loop.call_soon_threadsafe(_settle, future, now)
            else:
                self.bad_signatures += 1
        await send({"type": "http.response.start", "status": 204 if ok else 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _settle(future: asyncio.Future[float], value: float) -> None:
    if not future.done():
        future.set_result(value)


def start_receiver(receiver: Receiver, port: int) -> uvicorn.Server:
    config = uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("receiver did not start")
        time.sleep(0.02)
    return server


def write_config(path: Path, db_url: str, port: int, receiver_port: int, zones: int, dead: bool) -> None:
    lines = [
        "[cloud]",
        f'db_url = "{db_url}"',
        f"port = {port}",
        "[cloud.coldchain]",
        'allowed_destinations = ["127.0.0.1"]',
        "gap_minutes = 60",
        "escalation_minutes = 60",
        "[[cloud.coldchain.channels]]",
        'type = "webhook"',
        'name = "ops"',
        f'url = "http://127.0.0.1:{receiver_port}/alerts"',
        f'secret = "{SECRET}"',
    ]
    if dead:
        lines += [
            "[[cloud.coldchain.channels]]",
            'type = "webhook"',
            'name = "dead"',
            f'url = "http://127.0.0.1:{free_port()}/alerts"',
            f'secret = "{SECRET}"',
        ]
    for i in range(zones):
        lines += [
            "[[zones]]",
            f'id = "z-{i}"',
            f'site_id = "{SITE}"',
            "max_temp_c = 8.0",
            "hysteresis_c = 0.5",
        ]
    path.write_text("\n".join(lines) + "\n")


async def register_edges(db_url: str, count: int) -> list[str]:
    engine = db.create_engine(db_url)
    try:
        return [(await create_edge_async(engine, SITE, f"bench-edge-{i}"))[1] for i in range(count)]
    finally:
        await engine.dispose()


def wait_for_cloud(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"cloud exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("cloud did not start")


def reading_batch(edge: str, seq: int, zone: str, value: float) -> dict[str, Any]:
    event = {
        "kind": "sensor_reading",
        "sensor_id": f"probe-{zone}",
        "quantity": "temperature",
        "value": value,
        "unit": "degC",
        "time": datetime.now(UTC).isoformat(),
        "zone": zone,
    }
    return {"v": 1, "edge_id": edge, "created_at": event["time"], "events": [{"seq": seq, "event": event}]}


async def worker(
    index: int,
    count: int,
    token: str,
    client: httpx.AsyncClient,
    receiver: Receiver,
    out: dict[str, list[float]],
) -> None:
    edge, zone = f"bench-edge-{index}", f"z-{index}"
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/edges/{edge}/batches"
    seq = 0
    for _ in range(count):
        for value, state in ((9.5, "raised"), (5.0, "resolved")):
            seq += 1
            arrival = receiver.expect(zone, state)
            sent = time.perf_counter()
            response = await client.post(path, json=reading_batch(edge, seq, zone, value), headers=headers)
            accepted = time.perf_counter()
            response.raise_for_status()
            try:
                delivered = await asyncio.wait_for(arrival, 30)
            except TimeoutError:
                out["lost"].append(1.0)
                continue
            if state == "raised":
                out["latency"].append((delivered - sent) * 1000)
                out["post"].append((accepted - sent) * 1000)
            else:
                out["resolved"].append((delivered - sent) * 1000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


async def run(alerts: int, workers: int, db_url: str | None, dead: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="shelfsense-alert-bench-"))
    db_url = db_url or f"sqlite+aiosqlite:///{tmp / 'cloud.db'}"
    receiver = Receiver(asyncio.get_running_loop())
    receiver_port, cloud_port = free_port(), free_port()
    receiver_server = start_receiver(receiver, receiver_port)
    config = tmp / "cloud.toml"
    write_config(config, db_url, cloud_port, receiver_port, workers, dead)
    tokens = await register_edges(db_url, workers)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(config)], env=env, cwd=tmp)
    url = f"http://127.0.0.1:{cloud_port}"
    out: dict[str, list[float]] = {"latency": [], "post": [], "resolved": [], "lost": []}
    try:
        await asyncio.to_thread(wait_for_cloud, url, process)
        per_worker = [alerts // workers + (1 if i < alerts % workers else 0) for i in range(workers)]
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            started = time.perf_counter()
            await asyncio.gather(
                *(worker(i, n, tokens[i], client, receiver, out) for i, n in enumerate(per_worker) if n)
            )
            elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)
        receiver_server.should_exit = True
    latencies = out["latency"]
    if not latencies:
        raise SystemExit("no alert was delivered")
    return {
        "alerts": len(latencies),
        "lost": len(out["lost"]),
        "workers": workers,
        "db": db_url.split(":", 1)[0],
        "dead_channel": dead,
        "bad_signatures": receiver.bad_signatures,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(max(latencies), 2),
        "post_p50_ms": round(statistics.median(out["post"]), 2),
        "resolved_p50_ms": round(statistics.median(out["resolved"]), 2) if out["resolved"] else None,
        "alerts_per_s": round(len(latencies) / elapsed, 1),
        "stage": "POST reading -> ingest -> evaluate -> commit -> dispatch -> signed webhook verified",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4, help="concurrent edges, one zone each")
    parser.add_argument("--db", default=None, help="cloud database URL (default: SQLite in a temp dir)")
    parser.add_argument("--no-dead-channel", action="store_true", help="only the live webhook channel")
    args = parser.parse_args()
    result = asyncio.run(run(args.alerts, args.workers, args.db, not args.no_dead_channel))
    print(
        f"{result['alerts']} alerts delivered ({result['lost']} lost), {result['alerts_per_s']}/s: "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"(POST answered at p50 {result['post_p50_ms']} ms)"
    )
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["bad_signatures"] == 0 and result["p99_ms"] < 1000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
