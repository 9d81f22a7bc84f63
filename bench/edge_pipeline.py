"""Edge pipeline throughput on one core: raw tag reads -> smoothing/portal -> durable outbox.

Run: ``.venv/bin/python bench/edge_pipeline.py [--reads N] [--events N] [--synchronous FULL]``.

1. ``reads_per_s``: N raw reads (500 tags, two portal readers) through the agent's intake
   (:meth:`EdgeAgent.accept_reads`, what ``emit(TagReads)`` does: smoother + portal tracker),
   flushing the event cycles as they elapse.
2. ``durable_events_per_s``: events committed by the :class:`OutboxWriter` (group commit, WAL,
   ``synchronous`` as configured, FULL by default) from 20 concurrent producers, each awaiting its
   commit like a device task does.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.readings import TagRead
from edge.agent import EdgeAgent
from edge.outbox import Outbox, OutboxWriter
from edge.transports.protocol import TagReads
from shelfsense.config import EdgeSettings, PortalConfig, Settings, UhfReaderConfig
from shelfsense.contract import Event, TagObservation

TAGS = 500


def bench_reads(n: int, db: Path) -> tuple[float, int]:
    settings = Settings(
        demo=True,
        edge=EdgeSettings(
            db_path=db,
            uhf_readers=[
                UhfReaderConfig(id="outer", port="/dev/null"),
                UhfReaderConfig(id="inner", port="/dev/null"),
            ],
            portals=[
                PortalConfig(id="door", outer_reader="outer", inner_reader="inner", inside_location="room")
            ],
        ),
    )
    agent = EdgeAgent(settings, cycle_s=1.0)
    reads = [TagRead(epc=f"3034ABCD{t:016X}", rssi=-40.0 - t % 30, pc=0x3000) for t in range(TAGS)]
    start_at = datetime(2025, 1, 1, tzinfo=UTC)
    # 200 reads per tag per second of simulated time: a read storm.
    step = timedelta(seconds=1 / (200 * TAGS))
    accept = agent.accept_reads  # what EdgeAgent.emit does with a TagReads emission
    emitted = 0
    now = start_at
    began = time.perf_counter()
    for i in range(n):
        read = reads[i % TAGS]
        accept(TagReads("outer" if i & 1 else "inner", (read,), now))
        now += step
        if i % 10_000 == 0:
            for smoother in agent.smoothers.values():
                emitted += len(smoother.flush(now))
            for portal in agent.portals:
                emitted += len(portal.poll(now))
    elapsed = time.perf_counter() - began
    return n / elapsed, emitted


async def bench_durable(n: int, db: Path, synchronous: str) -> float:
    async with Outbox(db, synchronous) as outbox:  # type: ignore[arg-type]
        writer = OutboxWriter(outbox)
        task = asyncio.create_task(writer.run())
        at = datetime(2025, 1, 1, tzinfo=UTC)
        template = TagObservation(
            epc="3034ABCD0000000000000001",
            reader="r1",
            antenna=1,
            rssi=-50,
            first_seen=at,
            last_seen=at,
            count=10,
        )
        producers = 20
        per_call = 100
        calls = n // (producers * per_call)

        async def produce() -> None:
            events: list[Event] = [template] * per_call
            for _ in range(calls):
                await writer.submit(events)

        began = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(producers)))
        elapsed = time.perf_counter() - began
        await writer.stop()
        await task
        stats = await outbox.stats()
        if stats.last_seq != producers * per_call * calls:
            raise SystemExit(f"committed {stats.last_seq}, expected {producers * per_call * calls}")
        print(
            f"durable: {stats.last_seq} events in {writer.commits} commits, {elapsed:.2f} s", file=sys.stderr
        )
        return stats.last_seq / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--synchronous", default="FULL", choices=["OFF", "NORMAL", "FULL", "EXTRA"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        reads_per_s, emitted = bench_reads(args.reads, Path(folder) / "reads.db")
        print(
            f"reads: {args.reads} raw reads -> {emitted} events, {reads_per_s:,.0f} reads/s", file=sys.stderr
        )
        durable = asyncio.run(bench_durable(args.events, Path(folder) / "durable.db", args.synchronous))
        print(f"durable: {durable:,.0f} events/s (synchronous={args.synchronous})", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "reads_per_s": round(reads_per_s),
                "durable_events_per_s": round(durable),
                "peak_rss_mb": round(rss, 1),
                "synchronous": args.synchronous,
                "smoothed_events": emitted,
            }
        )
    )


if __name__ == "__main__":
    main()
