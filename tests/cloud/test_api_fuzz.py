"""Schemathesis (a maintained OpenAPI fuzzer, https://schemathesis.readthedocs.io) against a live
uvicorn: every operation of the published schema, authenticated as an admin, positive and negative
examples; its ``not_a_server_error`` check must never fire (issue 12, item 12).

Deterministic: hypothesis is derandomized and keeps no example database, so CI sees the same
requests every run. The requests go through httpx (``case.as_transport_kwargs``): schemathesis'
own requests transport breaks on the urllib3-future package another dependency installs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from conftest import batch, movement, reading
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from cloud.admin import create_edge_async, create_user_async
from cloud.core import db
from cloud.main import build_server
from shelfsense.config import CloudSettings, Settings, ZoneLimits
from shelfsense.services import free_port

EXAMPLES_PER_MODE = 4  # ~60 operations x 2 modes; the whole run stays well under a minute


async def _provision(db_url: str, port: int) -> tuple[str, str]:
    engine = db.create_engine(db_url)
    try:
        _, edge_token = await create_edge_async(engine, "site-1", "edge-1")
        admin = await create_user_async(engine, "ada", "admin")
    finally:
        await engine.dispose()
    # Some rows for the fuzzer to find: a reading above the limit (an alert), a stock movement.
    body = batch("edge-1", [(1, reading(0, 9.5)), (2, movement(1, "3034257BF400B7800004CB2F", "shelf"))])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        posted = await client.post(
            "/api/v1/edges/edge-1/batches", json=body, headers={"Authorization": f"Bearer {edge_token}"}
        )
        assert posted.status_code == 200, posted.text
    return admin, edge_token


@pytest.fixture
def live_cloud(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(base_url, admin_token, edge_token)`` of a real uvicorn serving the app in a thread."""
    port = free_port()
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    config = Settings(
        cloud=CloudSettings(db_url=db_url, port=port, max_body_bytes=64 * 1024, max_event_age_s=None),
        zones=[ZoneLimits(id="cold-1", min_temp_c=2.0, max_temp_c=8.0)],
    )
    server = build_server(config, log_level="critical")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", *asyncio.run(_provision(db_url, port))
    finally:
        server.should_exit = True
        thread.join(30)


def _send(client: httpx.Client, case: Case, base_url: str, token: str) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
    data = kwargs.get("data")
    return client.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        content=data if isinstance(data, bytes | str) else None,
        json=kwargs.get("json"),
    )


def _fuzz(operation: APIOperation, mode: GenerationMode, send: Callable[[Case], httpx.Response]) -> list[str]:
    """Run ``EXAMPLES_PER_MODE`` examples of one operation; the curl line of each server error."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # report, do not shrink
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case) -> None:
        response = send(case)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except* AssertionError:  # schemathesis raises a group of check failures
            failures.append(f"{case.as_curl_command()}\n  -> {response.status_code}")

    with contextlib.suppress(Unsatisfiable):  # e.g. no negative example for a parameterless GET
        check()
    return failures


def test_schemathesis_finds_no_server_error(live_cloud: tuple[str, str, str]) -> None:
    base_url, admin, edge_token = live_cloud
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    operations = 0
    with httpx.Client(timeout=30) as client:

        def as_admin(case: Case) -> httpx.Response:
            return _send(client, case, base_url, admin)

        def as_edge(case: Case) -> httpx.Response:
            # The sync endpoint parses only the bodies of its own edge: fuzz it as edge-1.
            if case.path_parameters:
                case.path_parameters["edge_id"] = "edge-1"
            return _send(client, case, base_url, edge_token)

        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()  # the published schema itself is valid
            operation = result.ok()
            operations += 1
            send = as_edge if operation.path.endswith("/batches") else as_admin
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures += _fuzz(operation, mode, send)
    assert operations >= 50, operations  # the whole API was fuzzed, not an empty schema
    assert not failures, "\n".join(failures[:20])
