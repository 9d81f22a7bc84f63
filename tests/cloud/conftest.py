"""Fixtures for the cloud tests: every DB test runs on SQLite (tmp file) AND PostgreSQL (``pg_url``)."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.admin import create_edge_async, create_user_async
from cloud.main import create_app
from shelfsense.config import CloudSettings, Settings, ZoneLimits

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
MAX_BODY = 64 * 1024
EPC_A = "3034257BF400B7800004CB2F"
EPC_B = "3034257BF400B7800004CB30"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def reading(
    seconds: float,
    value: float,
    *,
    quantity: str = "temperature",
    zone: str | None = "cold-1",
    sensor: str = "probe-1",
    flags: tuple[str, ...] = (),
) -> dict[str, Any]:
    unit = {"temperature": "degC", "humidity": "%RH"}[quantity]
    return {
        "kind": "sensor_reading",
        "sensor_id": sensor,
        "quantity": quantity,
        "value": value,
        "unit": unit,
        "time": at(seconds),
        "zone": zone,
        "flags": list(flags),
    }


def movement(seconds: float, epc: str, to: str | None, frm: str | None = None) -> dict[str, Any]:
    return {"kind": "stock_movement", "epc": epc, "from_location": frm, "to_location": to, "at": at(seconds)}


def observation(seconds: float, epc: str, reader: str = "outer") -> dict[str, Any]:
    return {
        "kind": "tag_observation",
        "epc": epc,
        "reader": reader,
        "antenna": 1,
        "rssi": -55.0,
        "first_seen": at(seconds),
        "last_seen": at(seconds + 1),
        "count": 3,
        "location": "dock",
    }


def passage(seconds: float, epc: str, direction: str = "in") -> dict[str, Any]:
    return {
        "kind": "portal_passage",
        "epc": epc,
        "portal": "dock-1",
        "direction": direction,
        "at": at(seconds),
        "inside_location": "backroom",
        "outside_location": None,
    }


def alarm(seconds: float, state: str, value: float, rule: str = "max_temperature") -> dict[str, Any]:
    return {
        "kind": "local_alarm",
        "zone": "cold-1",
        "sensor_id": "probe-1",
        "rule": rule,
        "state": state,
        "value": value,
        "limit": 8.0,
        "at": at(seconds),
    }


def health(seconds: float, device: str = "uhf-1", connected: bool = True) -> dict[str, Any]:
    return {
        "kind": "device_health",
        "device_id": device,
        "connected": connected,
        "frames_ok": 10,
        "frames_bad": 1,
        "reconnects": 0,
        "at": at(seconds),
    }


def batch(edge_id: str, events: list[tuple[int, dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "edge_id": edge_id,
        "created_at": at(0),
        "events": [{"seq": s, "event": e} for s, e in events],
        **extra,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        # The fixtures replay events dated 2025 (T0): no age limit on plausible event times.
        cloud=CloudSettings(max_event_age_s=None, db_url=db_url, max_body_bytes=MAX_BODY),
        zones=[
            ZoneLimits(
                id="cold-1",
                site_id="site-1",
                min_temp_c=2.0,
                max_temp_c=8.0,
                max_humidity=90.0,
                hysteresis_c=0.5,
            )
        ],
    )


async def settle_lots(engine: AsyncEngine) -> None:
    """Fold everything written so far into the lot read model (what its catch-up job does within
    seconds), so a test reads ``/lots`` and ``/fefo`` as of now."""
    from cloud.lots.readmodel import ReadModelOptions, refresh

    await refresh(engine, options=ReadModelOptions(min_refresh_s=0.0))


@dataclass
class Cloud:
    """An app with its lifespan running, an ASGI client and a few registered principals."""

    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine
    edge_tokens: dict[str, str] = field(default_factory=dict)
    viewer: str = ""
    admin: str = ""

    async def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        edge: str = "edge-1",
        token: str | None = None,
        gzipped: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if gzipped:
            raw = gzip.compress(raw)
            all_headers["Content-Encoding"] = "gzip"
        auth = token if token is not None else self.edge_tokens[edge]
        if auth:
            all_headers["Authorization"] = f"Bearer {auth}"
        return await self.client.post(f"/api/v1/edges/{edge}/batches", content=raw, headers=all_headers)

    async def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.viewer}"}
        return await self.client.get(path, params=params, headers=headers)

    async def get_ok(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def cloud(settings: Settings) -> AsyncIterator[Cloud]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            c = Cloud(app=app, client=client, engine=engine)
            for edge, site in (("edge-1", "site-1"), ("edge-2", "site-1"), ("edge-3", "site-2")):
                c.edge_tokens[edge] = (await create_edge_async(engine, site, edge))[1]
            c.viewer = await create_user_async(engine, "vera", "viewer")
            c.admin = await create_user_async(engine, "ada", "admin")
            yield c
