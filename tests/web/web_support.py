"""Helpers and fixtures for the operator page tests: an app with its lifespan and an ASGI client.

Deliberately not a conftest.py: tests/cloud imports helpers ``from conftest``, and a second
conftest module of that name would shadow theirs depending on collection order. Test modules
import the fixtures from here by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.admin import create_edge_async, create_user_async
from cloud.main import create_app
from cloud.web.sessions import set_password_async
from shelfsense.config import CloudSettings, Settings, WebSettings, ZoneLimits

PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", "postgresql"])
def web_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def make_settings(db_url: str, *, secure_cookies: str = "auto", port: int = 0) -> Settings:
    return Settings(
        cloud=CloudSettings(
            db_url=db_url,
            port=port,
            max_event_age_s=None,  # the fixtures replay events dated 2025
            web=WebSettings(secure_cookies=secure_cookies),  # type: ignore[arg-type]
        ),
        zones=[ZoneLimits(id="cold-1", site_id="site-1", min_temp_c=2.0, max_temp_c=8.0, hysteresis_c=0.5)],
    )


@dataclass
class WebApp:
    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine
    edge_token: str
    viewer_token: str
    operator_token: str

    async def login(self, username: str, password: str = PASSWORD) -> str:
        """Log the client in with a password; returns the CSRF token."""
        response = await self.client.post("/web/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        csrf: str = response.json()["csrf"]
        return csrf


async def start_web_app(settings: Settings, base_url: str = "http://testserver") -> AsyncIterator[WebApp]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        _, edge_token = await create_edge_async(engine, "site-1", "edge-1")
        viewer = await create_user_async(engine, "vera", "viewer")
        operator = await create_user_async(engine, "olga", "operator")
        for name in ("vera", "olga"):
            await set_password_async(engine, name, PASSWORD)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield WebApp(app, client, engine, edge_token, viewer, operator)


@pytest.fixture
async def web(web_db_url: str) -> AsyncIterator[WebApp]:
    async for app in start_web_app(make_settings(web_db_url)):
        yield app
