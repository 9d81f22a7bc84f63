"""An edge for the multi-host test, run inside its network namespace: the real outbox and sync loop
(TLS with a pinned CA through the proxy), fed with sensor readings in phases the test releases.

Phase ``p`` (1-based) appends ``--per-phase`` readings once the file ``DIR/go-p`` exists, then writes
``DIR/appended-p``. The process exits 0 once every phase is appended and acknowledged, printing one
JSON object (edge, appended, acked)."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.outbox import Outbox
from edge.sync import SyncClient, sync_loop
from edge.tls import cloud_ssl_context
from shelfsense.contract import SensorReading

# Recent device times: the cloud applies only events inside its plausibility window (30 days).
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def readings(sensor: str, first: int, count: int) -> list[SensorReading]:
    return [
        SensorReading(
            sensor_id=sensor,
            quantity="temperature",
            value=4.0 + (n % 9) / 10,
            unit="degC",
            time=T0 + timedelta(seconds=n),
            zone="cold-1",
        )
        for n in range(first, first + count)
    ]


async def wait_for(path: Path) -> None:
    while not path.exists():
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> dict[str, object]:
    workdir = Path(args.dir)
    total = args.phases * args.per_phase
    client = SyncClient(
        args.cloud_url, args.edge_id, args.token, verify=cloud_ssl_context(Path(args.ca), None)
    )
    stop = asyncio.Event()
    async with Outbox(workdir / "edge.db") as outbox:
        sync = asyncio.create_task(sync_loop(outbox, client, 0.1, 200, stop, backoff_max=1.0))
        for phase in range(1, args.phases + 1):
            await wait_for(workdir / f"go-{phase}")
            first = (phase - 1) * args.per_phase
            for start in range(first, first + args.per_phase, 100):
                await outbox.append(readings(f"probe-{args.edge_id}", start, 100))
                await asyncio.sleep(0.02)  # a steady stream, not one burst
            (workdir / f"appended-{phase}").touch()
        while (await outbox.progress())[1] < total:
            await asyncio.sleep(0.1)
        stop.set()
        await sync
        acked = (await outbox.progress())[1]
    await client.aclose()
    return {"edge": args.edge_id, "appended": total, "acked": acked}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--dir", "--cloud-url", "--edge-id", "--token", "--ca"):
        parser.add_argument(name, required=True)
    parser.add_argument("--phases", type=int, default=3)
    parser.add_argument("--per-phase", type=int, default=500)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
