"""Alert latency: a reading beyond a limit -> excursion evaluated -> signed webhook received.

Run: ``.venv/bin/python bench/alert_latency.py [--alerts N] [--rate PER_S] [--sensors S]``.

A real ``uvicorn`` server (in a thread of this process, so both sides share one monotonic clock)
receives the webhooks and verifies each HMAC signature. For every alert the clock starts when the
reading is handed to :class:`cloud.coldchain.excursions.ExcursionEvaluator` (the point where the
cloud has accepted it) and stops when the receiver has read and verified the body. The dispatcher
delivers concurrently, as in production, with a second, dead webhook channel configured so the
figures include the "a failing channel never delays the others" guarantee.

Scope: this measures the evaluation and delivery stage. The HTTP hop edge -> cloud ingest is
measured by ``bench/ingest.py``; once the cloud calls the dispatcher from ingest, the two add up.
The last line is one JSON object with ``p50_ms``, ``p99_ms``, ``alerts``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.coldchain.excursions import ExcursionConfig, ExcursionEvaluator, InstantRule
from cloud.notify import AlertDispatcher, AlertMessage, RetryPolicy, WebhookChannel, verify_webhook

SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """A minimal ASGI webhook receiver that records when each alert arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()

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
                self.arrivals[json.loads(body)["alert_id"]] = now
            else:
                self.bad_signatures += 1
        await send({"type": "http.response.start", "status": 204 if ok else 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})


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


async def run(alerts: int, rate: float, sensors: int) -> dict[str, Any]:
    receiver = Receiver()
    port = free_port()
    server = start_receiver(receiver, port)
    live = WebhookChannel(f"http://127.0.0.1:{port}/alerts", SECRET, name="webhook")
    dead = WebhookChannel(f"http://127.0.0.1:{free_port()}/alerts", SECRET, name="dead", retry=RetryPolicy(2))
    dispatcher = AlertDispatcher([live, dead], timeout_s=5.0)
    runner = asyncio.create_task(dispatcher.run())
    config = ExcursionConfig((InstantRule("max_temperature", "above", 8.0, hysteresis=0.5),))
    evaluators = [ExcursionEvaluator(config) for _ in range(sensors)]
    started: dict[str, float] = {}
    t = 1_800_000_000.0
    for n in range(alerts):
        index = n % sensors
        evaluator = evaluators[index]
        t += 1.0
        evaluator.feed(t, 5.0)  # back inside: the next warm reading is a new excursion
        accepted = time.perf_counter()
        for event in evaluator.feed(t + 0.5, 9.5):
            if event.state != "raised":
                continue
            alert_id = f"{index}-{n}"
            started[alert_id] = accepted
            dispatcher.submit(
                AlertMessage(
                    alert_id=alert_id,
                    site_id="site-1",
                    kind=event.rule,
                    state="raised",
                    title="Cold room above 8 °C",
                    text="bench",
                    at=datetime.now(UTC),
                    zone=f"zone-{index}",
                    value=event.value,
                    limit=event.limit,
                )
            )
        await asyncio.sleep(1.0 / rate)
    await asyncio.wait_for(dispatcher.drain(), 60)
    runner.cancel()
    await live.aclose()
    await dead.aclose()
    server.should_exit = True
    latencies = sorted((receiver.arrivals[a] - started[a]) * 1000 for a in started if a in receiver.arrivals)
    if not latencies:
        raise SystemExit("no alert was delivered")
    p99_index = min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))
    return {
        "alerts": len(started),
        "delivered": len(latencies),
        "bad_signatures": receiver.bad_signatures,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[p99_index], 2),
        "max_ms": round(latencies[-1], 2),
        "stage": "evaluate+dispatch+webhook",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="alerts per second")
    parser.add_argument("--sensors", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(run(args.alerts, args.rate, args.sensors))
    print(
        f"{result['delivered']}/{result['alerts']} alerts delivered: p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
    )
    print(json.dumps(result))
    return 0 if result["delivered"] == result["alerts"] and result["p99_ms"] < 1000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
