"""Backlog drain: N events queued on an edge (an outage) -> a real cloud child on SQLite, over loopback.

Run: ``.venv/bin/python bench/sync.py [--events 1000000] [--batch 5000]``.

The backlog (sensor readings, tag observations and device health in a realistic mix) is written into
the edge outbox first, then the edge's own :func:`edge.sync.sync_loop` drains it to
``python -m shelfsense cloud serve`` (a child process). Reported: ``events_per_s`` (events the cloud
acknowledged per second), ``catch_up_s`` (time until the outbox is empty), ``duplicates`` (events the
cloud received twice: resends), ``lost`` (sequences missing in the cloud's ``events`` table).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge_harness import CloudChild

from edge.outbox import Outbox
from edge.sync import SyncClient, sync_loop
from shelfsense.contract import DeviceHealth, Event, SensorReading, TagObservation

EDGE_ID = "edge-bench"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backlog_chunk(start: int, count: int, t0: datetime) -> list[Event]:
    events: list[Event] = []
    for n in range(start, start + count):
        at = t0 + timedelta(milliseconds=n)
        kind = n % 10
        if kind < 7:
            events.append(
                SensorReading(
                    sensor_id=f"probe-{n % 50}",
                    quantity="temperature",
                    value=3 + n % 40 / 10,
                    unit="degC",
                    time=at,
                )
            )
        elif kind < 9:
            events.append(
                TagObservation(
                    epc=f"3034ABCD{n % 5000:016X}",
                    reader="dock-inner",
                    antenna=1,
                    rssi=-55,
                    first_seen=at,
                    last_seen=at,
                    count=12,
                )
            )
        else:
            events.append(DeviceHealth(device_id="dock-inner", connected=True, frames_ok=n, at=at))
    return events


async def fill(outbox: Outbox, total: int) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=6)
    for start in range(0, total, 10_000):
        await outbox.append(backlog_chunk(start, min(10_000, total - start), t0))


async def drain(outbox: Outbox, cloud: CloudChild, batch: int, total: int) -> float:
    client = SyncClient(cloud.url, EDGE_ID, cloud.tokens[EDGE_ID])
    stop = asyncio.Event()
    began = time.perf_counter()
    task = asyncio.create_task(sync_loop(outbox, client, 0.05, batch, stop))
    last_report = began
    # Progress from the outbox's meta row: polling stats() would COUNT(*) a million rows four
    # times a second on the edge's one connection, slowing the very drain being measured.
    while (done := (await outbox.progress())[1]) < total:
        await asyncio.sleep(0.05)
        if time.perf_counter() - last_report > 10:
            last_report = time.perf_counter()
            print(f"  {done}/{total} acked, {done / (last_report - began):,.0f} events/s", file=sys.stderr)
    elapsed = time.perf_counter() - began
    stop.set()
    await task
    await client.aclose()
    return elapsed


async def run(total: int, batch: int, workdir: Path) -> dict[str, object]:
    cloud = CloudChild(workdir / "cloud")
    await asyncio.to_thread(cloud.register_edge, EDGE_ID)
    await asyncio.to_thread(cloud.start)
    try:
        async with Outbox(workdir / "edge.db") as outbox:
            began = time.perf_counter()
            await fill(outbox, total)
            print(
                f"backlog of {total} events written in {time.perf_counter() - began:.1f} s", file=sys.stderr
            )
            assert cloud.process is not None
            cloud_pid = cloud.process.pid
            cloud_cpu = cpu_seconds(cloud_pid)
            edge_cpu = time.process_time()
            catch_up = await drain(outbox, cloud, batch, total)
            edge_cpu = time.process_time() - edge_cpu
            cloud_cpu = cpu_seconds(cloud_pid) - cloud_cpu
        seqs = cloud.seqs(EDGE_ID)
        lost = total - len(set(seqs) & set(range(1, total + 1)))
        return {
            "events": total,
            "batch": batch,
            "events_per_s": round(total / catch_up),
            "catch_up_s": round(catch_up, 1),
            "duplicates": cloud.duplicates_received(EDGE_ID) + (len(seqs) - len(set(seqs))),
            "lost": lost,
            "stored": len(seqs),
            "edge_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            # CPU spent per side during the drain: unlike events/s, independent of other load.
            "cloud_cpu_s": round(cloud_cpu, 1),
            "edge_cpu_s": round(edge_cpu, 1),
            "events_per_cloud_cpu_s": round(total / cloud_cpu) if cloud_cpu else None,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        await asyncio.to_thread(cloud.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shelfsense-bench-sync-") as folder:
        result = asyncio.run(run(args.events, args.batch, Path(folder)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
