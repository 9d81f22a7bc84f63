"""Backlog drain with two batches in flight: acks out of order, nothing lost, nothing resent."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.errors import PermanentSyncError
from edge.outbox import Outbox
from edge.sync import SyncClient, drain_pipelined, sync_loop
from shelfsense.contract import DeviceHealth, SensorReading, parse_batch

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class CommitsOutOfOrder:
    """A cloud that holds each odd batch until the next one arrived and commits that one FIRST.

    Like the real cloud it stores sequences ahead of its contiguous ack and answers every batch
    with the highest contiguous sequence stored when that batch committed.
    """

    def __init__(self, lose_from: int | None = None) -> None:
        self.stored: set[int] = set()
        self.received: list[list[int]] = []
        self.acked_below_own_batch = 0  # answers of a batch committed before the one ahead of it
        self.lose_from = lose_from  # simulate a cloud that lost its data from this seq on
        self._arrived = asyncio.Condition()
        self.url = ""

    def _contiguous(self) -> int:
        n = 0
        while n + 1 in self.stored:
            n += 1
        return n

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {
            k.lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head.decode().split("\r\n")[1:])
        }
        body = gzip.decompress(await reader.readexactly(int(headers["content-length"])))
        seqs = [e.seq for e in parse_batch(body).events]
        async with self._arrived:
            self.received.append(seqs)
            index = len(self.received)
            self._arrived.notify_all()
            if index % 2 == 1:  # wait (briefly) for the next batch; it commits first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) > index), 0.5)
                await asyncio.sleep(0.02)
        self.stored.update(s for s in seqs if self.lose_from is None or s < self.lose_from)
        acked = self._contiguous()
        self.acked_below_own_batch += bool(seqs) and acked < seqs[0]
        payload = json.dumps({"acked_through": acked, "accepted": len(seqs), "duplicates": 0})
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            f"Connection: close\r\n\r\n{payload}".encode()
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def backlog(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox(tmp_path / "edge.db") as box:
        await box.append(
            [
                SensorReading(sensor_id="p", quantity="temperature", value=n / 10, unit="degC", time=T0)
                for n in range(1, 1035)
            ]
        )
        yield box


async def serve(fake: CommitsOutOfOrder) -> asyncio.Server:
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    return server


async def test_out_of_order_commits_drain_everything_exactly_once(backlog: Outbox) -> None:
    fake = CommitsOutOfOrder()
    server = await serve(fake)
    client = SyncClient(fake.url, "edge-1", "token")
    try:
        sent, deleted = await drain_pipelined(backlog, client, 100)
        # The drain leaves the partial tail (34 events) to sync_once.
        assert (sent, deleted) == (1000, 1000)
        assert await backlog.progress() == (1034, 1000)
        stop = asyncio.Event()
        task = asyncio.create_task(sync_loop(backlog, client, 0.01, 100, stop))
        async with asyncio.timeout(10):
            while (await backlog.progress())[1] < 1034:
                await asyncio.sleep(0.01)
        stop.set()
        await task
    finally:
        await client.aclose()
        server.close()
    every = [s for batch in fake.received for s in batch]
    assert sorted(every) == list(range(1, 1035))  # each sequence sent exactly once
    assert fake.stored == set(range(1, 1035))
    assert (await backlog.stats()).pending == 0
    # Batches really overlapped: some answers acked less than their own batch (committed first).
    assert fake.acked_below_own_batch > 0


async def test_next_batch_is_read_after_the_ones_in_flight(backlog: Outbox) -> None:
    first = await backlog.pending_rows(10)
    after = await backlog.pending_rows(10, first[-1][0])
    assert [s for s, _ in first] == list(range(1, 11))
    assert [s for s, _ in after] == list(range(11, 21))


async def test_a_cloud_missing_earlier_events_is_a_permanent_error(backlog: Outbox) -> None:
    fake = CommitsOutOfOrder(lose_from=1)  # stores nothing: its ack never reaches our batches
    server = await serve(fake)
    client = SyncClient(fake.url, "edge-1", "token")
    try:
        with pytest.raises(PermanentSyncError, match="missing earlier events"):
            await drain_pipelined(backlog, client, 100)
    finally:
        await client.aclose()
        server.close()
    assert (await backlog.stats()).pending == 1034  # nothing deleted without an ack


async def test_ledger_keeps_the_newest_reading_of_a_batch(tmp_path: Path) -> None:
    def temp(value: float, minute: int) -> SensorReading:
        at = T0.replace(minute=minute)
        return SensorReading(sensor_id="p", quantity="temperature", value=value, unit="degC", time=at)

    async with Outbox(tmp_path / "edge.db") as box:
        # Newest first in the batch, then an older redelivery: the newest value must stay.
        await box.append(
            [temp(5.0, 30), temp(4.0, 10), temp(4.5, 20), DeviceHealth(device_id="d", connected=True, at=T0)]
        )
        await box.append([temp(3.0, 5)])
        async with box.db.execute("SELECT value, time FROM sensor_latest") as cursor:
            assert await cursor.fetchall() == [(5.0, T0.replace(minute=30).isoformat())]
