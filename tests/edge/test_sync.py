"""The sync loop against a tiny real HTTP server that fails first, then acknowledges."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from edge_cloud_stub import FakeCloud, Request

from edge.errors import PermanentSyncError, TransientSyncError
from edge.outbox import Outbox
from edge.sync import SyncClient, sync_loop
from shelfsense.contract import Batch, DeviceHealth

T0 = datetime(2025, 1, 1, tzinfo=UTC)
Responder = Callable[[Request], tuple[int, bytes]]


def ack(through: int, accepted: int = 0) -> bytes:
    return json.dumps({"acked_through": through, "accepted": accepted, "duplicates": 0}).encode()


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox(tmp_path / "edge.db") as box:
        await box.append([DeviceHealth(device_id=f"d{n}", connected=True, at=T0) for n in range(1, 26)])
        yield box


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_fails_then_acks_nothing_lost_nothing_deleted_before_ack(
    cloud: Callable[[Responder], Awaitable[FakeCloud]], outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    pending_seen: list[int] = []
    stored: set[int] = set()

    cloud_up = False  # the test says when: no race between its check and the first success
    answered: list[Request] = []

    def respond(request: Request) -> tuple[int, bytes]:
        pending_seen.append(len(request.batch.events))
        if not cloud_up:
            return 503, b"{}"
        answered.append(request)
        stored.update(e.seq for e in request.batch.events)
        # The cloud acks only the first 7 of each batch: partial progress must be handled.
        return 200, ack(request.batch.events[min(6, len(request.batch.events) - 1)].seq)

    fake = await cloud(respond)
    client = SyncClient(fake.url, "edge-1", "s3cret")
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="edge.sync")
    task = asyncio.create_task(
        sync_loop(outbox, client, 0.01, 10, stop, backoff_initial=0.01, backoff_max=0.05)
    )
    try:
        # While the cloud fails, nothing is deleted.
        await wait_until(lambda: len(fake.requests) >= 3)
        assert (await outbox.stats()).pending == 25
        cloud_up = True
        await wait_until(lambda: len(stored) == 25)
        async with asyncio.timeout(5):
            while (await outbox.stats()).pending:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
        await client.aclose()
    stats = await outbox.stats()
    assert (stats.acked_through, stats.last_seq) == (25, 25)
    first = fake.requests[0]
    assert first.path == "/api/v1/edges/edge-1/batches"
    assert first.headers["authorization"] == "Bearer s3cret"
    assert first.headers["content-encoding"] == "gzip"
    assert [e.seq for e in first.batch.events] == list(range(1, 11))  # oldest first, batch limit
    # Batches restart right after the last ack: 1-10, then 8-17 (8..10 resent), ...
    assert [e.seq for e in answered[0].batch.events] == list(range(1, 11))
    assert next(e.seq for e in answered[1].batch.events) == 8
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cloud lost" in m for m in messages) == 1
    assert sum("cloud recovered" in m for m in messages) == 1


async def test_permanent_error_keeps_events_and_logs_loudly(
    cloud: Callable[[Responder], Awaitable[FakeCloud]], outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await cloud(lambda r: (401, b'{"detail":"bad token"}'))
    client = SyncClient(fake.url, "edge-1", "wrong")
    with pytest.raises(PermanentSyncError) as info:
        await client.send(Batch(edge_id="edge-1", created_at=T0, events=await outbox.pending(5)))
    assert info.value.status == 401
    stop = asyncio.Event()
    caplog.set_level(logging.ERROR, logger="edge.sync")
    task = asyncio.create_task(
        sync_loop(outbox, client, 0.01, 10, stop, backoff_initial=0.01, backoff_max=0.05)
    )
    await wait_until(lambda: len(fake.requests) >= 3)
    stop.set()
    await task
    await client.aclose()
    assert (await outbox.stats()).pending == 25
    assert any("permanent" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_413_halves_the_batch_until_it_fits(
    cloud: Callable[[Responder], Awaitable[FakeCloud]], outbox: Outbox
) -> None:
    def respond(request: Request) -> tuple[int, bytes]:
        if len(request.batch.events) > 3:
            return 413, b"too large"
        return 200, ack(request.batch.events[-1].seq)

    fake = await cloud(respond)
    client = SyncClient(fake.url, "edge-1", "t")
    stop = asyncio.Event()
    task = asyncio.create_task(
        sync_loop(outbox, client, 0.01, 20, stop, backoff_initial=0.01, backoff_max=0.02)
    )
    async with asyncio.timeout(5):
        while (await outbox.stats()).pending:
            await asyncio.sleep(0.01)
    stop.set()
    await task
    await client.aclose()
    assert [len(r.batch.events) for r in fake.requests[:4]] == [20, 10, 5, 2]


async def test_unreachable_cloud_is_transient() -> None:
    client = SyncClient("http://127.0.0.1:9", "edge-1", None)
    with pytest.raises(TransientSyncError):
        await client.send(Batch(edge_id="edge-1", created_at=T0, events=[]))
    await client.aclose()


async def test_stop_is_not_delayed_by_a_hung_cloud(outbox: Outbox) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = SyncClient(url, "edge-1", "t")
    stop = asyncio.Event()
    task = asyncio.create_task(sync_loop(outbox, client, 0.01, 10, stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 1)
    await client.aclose()
    server.close()
    assert (await outbox.stats()).pending == 25


def test_batch_json_from_stored_rows_is_a_valid_contract_batch() -> None:
    from edge.sync import batch_json
    from shelfsense.contract import parse_batch

    events = [DeviceHealth(device_id=f"d{n}", connected=True, at=T0) for n in (1, 2)]
    rows = [(7, events[0].model_dump_json()), (9, events[1].model_dump_json())]
    batch = parse_batch(batch_json("edge-1", rows, created_at=T0))
    assert batch.edge_id == "edge-1"
    assert [(e.seq, e.event) for e in batch.events] == [(7, events[0]), (9, events[1])]
    assert parse_batch(batch_json("edge-1", [], created_at=T0)).events == []


async def test_a_slow_cloud_is_polled_from_send_start_not_after_a_full_extra_interval(
    cloud: Callable[[Responder], Awaitable[FakeCloud]], outbox: Outbox
) -> None:
    """A steady stream with sends taking most of the interval: the loop must not idle a whole interval
    after each send (that halved the throughput of a busy edge)."""
    fake = await cloud(lambda r: (200, ack(r.batch.events[-1].seq)))
    fake.delay_s = 0.3
    client = SyncClient(fake.url, "edge-1", "t")
    stop = asyncio.Event()
    task = asyncio.create_task(sync_loop(outbox, client, 0.4, 1000, stop))
    try:
        for n in range(40):  # new events keep arriving, never a full batch
            await outbox.append([DeviceHealth(device_id=f"live{n}", connected=True, at=T0)])
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await client.aclose()
    gaps = [b - a for a, b in zip(fake.arrivals, fake.arrivals[1:], strict=False)]
    assert len(gaps) >= 3
    # Start to start: the interval (0.4 s) plus connection overhead, not send time + interval (0.7 s).
    assert max(gaps) < 0.6, gaps
