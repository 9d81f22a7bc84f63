"""Fixtures of the edge tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from edge_cloud_stub import FakeCloud, Request

# The process harness lives with the benchmarks, which use it too.
BENCH = str(Path(__file__).resolve().parents[2] / "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

Responder = Callable[[Request], tuple[int, bytes]]


@pytest.fixture
async def cloud() -> AsyncIterator[Callable[[Responder], Awaitable[FakeCloud]]]:
    """Start fake clouds answering with ``respond(request) -> (status, body)``."""
    servers: list[asyncio.Server] = []

    async def start(respond: Responder) -> FakeCloud:
        fake = FakeCloud(respond)
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        servers.append(server)
        fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return fake

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
