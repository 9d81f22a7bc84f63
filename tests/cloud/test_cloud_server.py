"""Through a real uvicorn server on a free port, and the sync admin wrappers."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket

import httpx
from conftest import batch, movement, reading

from cloud.admin import create_edge, create_edge_async, create_user, create_user_async, revoke_token
from cloud.core import db
from cloud.main import build_server
from shelfsense.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_admin_sync_wrappers(settings: Settings) -> None:
    url = settings.cloud.db_url
    edge_id, token = create_edge(url, "site-1", "edge-1")
    assert edge_id == "edge-1"
    assert token.startswith("sse_") and len(token) > 40
    assert create_edge(url, "site-1", "edge-1")[1] != token  # rotation: a second token
    assert create_user(url, "olga", "operator").startswith("ssu_")
    assert revoke_token(url, token) is True
    assert revoke_token(url, token) is False


async def test_real_server_round_trip(settings: Settings) -> None:
    port = free_port()
    settings = settings.model_copy(update={"cloud": settings.cloud.model_copy(update={"port": port})})
    server = build_server(settings, log_level="warning")
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        # Provision through a second engine, as the CLI would from another process.
        engine = db.create_engine(settings.cloud.db_url)
        try:
            _, token = await create_edge_async(engine, "site-1", "edge-1")
            viewer = await create_user_async(engine, "vera", "viewer")
        finally:
            await engine.dispose()
        body = gzip.compress(
            json.dumps(
                batch("edge-1", [(1, reading(0, 9.5)), (2, movement(1, "ABCDEF0123", "shelf"))])
            ).encode()
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            posted = await client.post(
                "/api/v1/edges/edge-1/batches",
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
            )
            assert posted.json() == {"acked_through": 2, "accepted": 2, "duplicates": 0}
            summary = (
                await client.get("/api/v1/summary", headers={"Authorization": f"Bearer {viewer}"})
            ).json()
            assert (summary["items_on_hand"], summary["alerts_open"]) == (1, 1)
            assert (await client.get("/readyz")).status_code == 200
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
