"""Reads cannot stall ingest or health (issue 18, item 3): cloud.core.pools and cloud.api.read_gate.

Every test asserts an order of events or an answer, never a duration: a read is held (blocked on
a threading.Event, or in a statement that never ends by itself) and the test checks what completes
while it is held. Both databases.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from conftest import batch, reading
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from test_cloud_server import free_port

from cloud.admin import create_edge_async, create_user_async
from cloud.api.deps import DbConn
from cloud.core.metrics import REGISTRY
from cloud.main import create_app
from shelfsense.config import ReadSettings, Settings

HELD = "/test/held"  # a heavy read whose shaping blocks its loop until released
NEVER_ENDING = "/test/never-ending"  # a read whose statement never ends by itself


def never_ending_sql(engine: AsyncEngine) -> str:
    if engine.dialect.name == "postgresql":
        return "SELECT pg_sleep(3600)"
    # SQLite: counts for ever (only the read engine's progress handler stops it).
    return "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@dataclass
class Held:
    """The held route's two sides: entered (it holds a read connection) and release."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)


def add_test_routes(app: FastAPI, held: Held) -> None:
    @app.get(HELD)
    async def held_read(conn: DbConn) -> dict[str, bool]:
        await conn.execute(text("SELECT 1"))
        held.entered.set()
        # Synchronous on purpose: CPU-bound shaping holds its event loop just like this.
        held.release.wait(120)
        return {"released": held.release.is_set()}

    @app.get(NEVER_ENDING)
    async def never_ending(conn: DbConn) -> dict[str, Any]:
        held.started.set()
        await conn.execute(text(never_ending_sql(conn.engine)))
        return {"ended": True}


def read_settings(settings: Settings, **reads: Any) -> Settings:
    base = ReadSettings(heavy_paths=[HELD], **reads)
    return settings.model_copy(update={"cloud": settings.cloud.model_copy(update={"reads": base})})


@dataclass
class Gated:
    app: FastAPI
    client: httpx.AsyncClient
    held: Held
    edge_token: str
    viewer: str

    async def ingest(self, seq: int) -> httpx.Response:
        body = batch("edge-1", [(seq, reading(seq, 5.0))])
        headers = {"Authorization": f"Bearer {self.edge_token}"}
        return await self.client.post("/api/v1/edges/edge-1/batches", json=body, headers=headers)

    async def read(self, path: str) -> httpx.Response:
        return await self.client.get(path, headers={"Authorization": f"Bearer {self.viewer}"})


@pytest.fixture
def reads() -> dict[str, Any]:
    return {}


@pytest.fixture
async def gated(settings: Settings, reads: dict[str, Any]) -> AsyncIterator[Gated]:
    held = Held()
    app = create_app(read_settings(settings, **reads))
    add_test_routes(app, held)
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            token = (await create_edge_async(engine, "site-1", "edge-1"))[1]
            viewer = await create_user_async(engine, "vera", "viewer")
            yield Gated(app, client, held, token, viewer)
            held.release.set()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (polled; the bound only keeps a broken build from hanging)."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def gauge(registry: CollectorRegistry, state: str) -> float:
    return registry.get_sample_value("shelfsense_heavy_reads", {"state": state}) or 0.0


async def test_held_heavy_read_delays_neither_health_nor_ingest(gated: Gated) -> None:
    read = asyncio.create_task(gated.read(HELD))
    assert await asyncio.to_thread(gated.held.entered.wait, 60), "the heavy read never started"
    # Its loop is blocked and it holds a read connection; the API's loop and ingest pool are not.
    health = await gated.client.get("/healthz")
    posted = await gated.ingest(1)
    assert health.status_code == 200
    assert posted.status_code == 200 and posted.json()["acked_through"] == 1
    assert not read.done(), "the held read finished before health and ingest were answered"
    gated.held.release.set()
    answer = await read
    assert answer.status_code == 200 and answer.json() == {"released": True}


@pytest.mark.parametrize("reads", [{"heavy_concurrency": 1, "heavy_queue": 1, "heavy_wait_s": 60}])
async def test_heavy_reads_beyond_slots_and_queue_get_503_retry_after(gated: Gated) -> None:
    first = asyncio.create_task(gated.read(HELD))
    assert await asyncio.to_thread(gated.held.entered.wait, 60)
    waiting_before = gauge(REGISTRY, "waiting")
    queued = asyncio.create_task(gated.read(HELD))
    await until(lambda: gauge(REGISTRY, "waiting") == waiting_before + 1, "the second read queued")
    refused = await gated.read(HELD)  # one running, one queued: no room
    assert refused.status_code == 503
    assert refused.json()["code"] == "busy"
    assert refused.headers["Retry-After"] == "2"
    assert not first.done() and not queued.done()
    gated.held.release.set()
    assert (await first).status_code == 200
    assert (await queued).status_code == 200  # the queued read got the slot once it came free


@pytest.mark.parametrize("reads", [{"statement_timeout_s": 0.5}])
async def test_read_past_its_statement_timeout_is_a_clean_503(gated: Gated) -> None:
    answer = await gated.read(NEVER_ENDING)
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "query_timeout"
    assert answer.headers["Retry-After"] == "2"
    engine: AsyncEngine = gated.app.state.engine
    posted = await gated.ingest(1)  # the ingest pool never lent a connection to the read
    assert posted.status_code == 200 and posted.json()["acked_through"] == 1
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    read_pool = gated.app.state.read_engine.pool
    await until(lambda: read_pool.checkedout() == 0, "the timed-out read returned its connection")


async def test_read_stuck_in_a_statement_leaves_ingest_and_health_alone(gated: Gated) -> None:
    read = asyncio.create_task(gated.read(NEVER_ENDING))
    assert await asyncio.to_thread(gated.held.started.wait, 60)
    read_pool = gated.app.state.read_engine.pool
    await until(lambda: read_pool.checkedout() == 1, "the read holds its connection")
    assert (await gated.client.get("/healthz")).status_code == 200
    posted = await gated.ingest(1)
    assert posted.status_code == 200 and posted.json()["acked_through"] == 1
    assert not read.done()
    read.cancel()  # the caller gives up: its statement must stop, and its connection come back
    await until(lambda: read_pool.checkedout() == 0, "the abandoned statement stopped")


async def test_a_client_that_disconnects_stops_its_read(settings: Settings) -> None:
    """Through a real server: the client goes away mid-statement; the statement is stopped (it
    would otherwise run for an hour, or for ever on SQLite) and its read connection comes back."""
    held = Held()
    port = free_port()
    app = create_app(read_settings(settings, statement_timeout_s=3600))
    add_test_routes(app, held)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started, "the server started")
        viewer = await create_user_async(app.state.engine, "vera", "viewer")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET {NEVER_ENDING} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {viewer}\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        assert await asyncio.to_thread(held.started.wait, 60)
        read_pool = app.state.read_engine.pool
        await until(lambda: read_pool.checkedout() == 1, "the read holds its connection")
        writer.close()  # the client has gone
        await writer.wait_closed()
        await until(lambda: read_pool.checkedout() == 0, "the abandoned statement stopped")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
        del reader
    finally:
        held.release.set()
        server.should_exit = True
        await asyncio.wait_for(task, 60)


async def test_stocktake_and_read_model_jobs_run_off_the_api_loop(gated: Gated) -> None:
    read_loop = gated.app.state.read_loop
    here = {task.get_name() for task in asyncio.all_tasks()}
    there = await asyncio.wrap_future(read_loop.submit(_task_names()))
    assert {"stocktake-job", "lot-read-model"} <= there
    assert not {"stocktake-job", "lot-read-model"} & here


async def _task_names() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks()}
