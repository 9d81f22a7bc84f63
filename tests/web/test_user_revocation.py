"""Revoking tokens and disabling users (CLI and admin API); page sessions end with their token or
user. Through the real app (ASGI) and the real ``shelfsense`` CLI on the same database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import web_support
from web_support import PASSWORD, WebApp, make_settings, start_web_app

from cloud.admin import create_user_async
from cloud.web.routes import CSRF_HEADER

web = web_support.web
web_db_url = web_support.web_db_url
SQLITE_ONLY = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real CLI, in a thread: the app's event loop (and its database jobs) keeps running."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shelfsense", "cloud", "admin", *args, "--db", db_url, "--json"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_session_from_a_token_ends_when_the_token_is_revoked_by_the_admin_api(web: WebApp) -> None:
    admin = await create_user_async(web.engine, "ada", "admin")
    login = await web.client.post("/web/login", json={"token": web.viewer_token})
    assert login.status_code == 200, login.text
    assert (await web.client.get("/api/v1/summary")).status_code == 200  # the cookie works
    revoked = await web.client.post(
        "/api/v1/tokens/revoke", json={"token": web.viewer_token}, headers=bearer(admin)
    )
    assert revoked.json() == {"revoked": True}
    assert (await web.client.get("/api/v1/summary", headers=bearer(web.viewer_token))).status_code == 401
    after = await web.client.get("/api/v1/summary")  # the same cookie, no bearer
    assert after.status_code == 401
    assert (await web.client.get("/web/session")).status_code == 401


async def test_disabling_a_user_ends_tokens_and_password_sessions_until_enabled(web: WebApp) -> None:
    admin = await create_user_async(web.engine, "ada", "admin")
    await web.login("olga")
    assert (await web.client.get("/api/v1/summary")).status_code == 200
    disabled = await web.client.post("/api/v1/users/olga/disable", headers=bearer(admin))
    assert disabled.status_code == 200, disabled.text
    assert (await web.client.get("/api/v1/summary")).status_code == 401  # the session ended
    assert (await web.client.get("/api/v1/summary", headers=bearer(web.operator_token))).status_code == 401
    relogin = await web.client.post("/web/login", json={"username": "olga", "password": PASSWORD})
    assert relogin.status_code == 401
    users = (await web.client.get("/api/v1/users", headers=bearer(admin))).json()
    assert {u["name"]: u["disabled"] for u in users}["olga"] is True
    assert (await web.client.post("/api/v1/users/olga/enable", headers=bearer(admin))).status_code == 200
    assert (await web.client.get("/api/v1/summary", headers=bearer(web.operator_token))).status_code == 200
    missing = await web.client.post("/api/v1/users/nobody/disable", headers=bearer(admin))
    assert missing.status_code == 404


@SQLITE_ONLY
async def test_admin_api_needs_an_admin_of_every_site(web: WebApp) -> None:
    local_admin = await create_user_async(web.engine, "sam", "admin", sites=["site-1"])
    for token in (local_admin, web.operator_token):
        response = await web.client.get("/api/v1/users", headers=bearer(token))
        assert response.status_code == 403, response.text
    created = await web.client.post(
        "/api/v1/users",
        json={"name": "nina", "role": "viewer", "sites": ["site-2"]},
        headers=bearer(await create_user_async(web.engine, "ada", "admin")),
    )
    assert created.status_code == 201, created.text
    assert created.json()["sites"] == ["site-2"]
    assert (
        await web.client.get("/api/v1/summary", headers=bearer(created.json()["token"]))
    ).status_code == 200


@SQLITE_ONLY
async def test_revoking_all_tokens_of_a_user_ends_their_token_sessions(web: WebApp) -> None:
    admin = await create_user_async(web.engine, "ada", "admin")
    second = await create_user_async(web.engine, "vera", "viewer")
    csrf = (await web.client.post("/web/login", json={"token": second})).json()["csrf"]
    assert csrf
    response = await web.client.delete("/api/v1/users/vera/tokens", headers=bearer(admin))
    assert response.json() == {"revoked": 2}
    for token in (web.viewer_token, second):
        assert (await web.client.get("/api/v1/summary", headers=bearer(token))).status_code == 401
    assert (await web.client.get("/api/v1/summary")).status_code == 401
    # A password session does not stand on a token: it lives on.
    csrf = await web.login("vera")
    assert (await web.client.get("/api/v1/summary")).status_code == 200
    ended = await web.client.post("/web/logout", headers={CSRF_HEADER: csrf})
    assert ended.json() == {"ended": True}


@SQLITE_ONLY
async def test_cli_revokes_disables_and_scopes(web_db_url: str) -> None:
    async for app in start_web_app(make_settings(web_db_url)):
        created = await cli(
            web_db_url, "create-user", "sam", "--role", "operator", "--sites", "site-1,site-2"
        )
        assert created.returncode == 0, created.stderr
        token = json.loads(created.stdout)["token"]
        assert json.loads(created.stdout)["sites"] == ["site-1", "site-2"]
        assert (await app.client.get("/api/v1/summary", headers=bearer(token))).status_code == 200

        assert (await cli(web_db_url, "disable-user", "sam")).returncode == 0
        assert (await app.client.get("/api/v1/summary", headers=bearer(token))).status_code == 401
        assert (await cli(web_db_url, "enable-user", "sam")).returncode == 0
        assert (await app.client.get("/api/v1/summary", headers=bearer(token))).status_code == 200

        revoked = await cli(
            web_db_url, "revoke-token", stdin=token + "\n"
        )  # stdin: never on the command line
        assert (revoked.returncode, json.loads(revoked.stdout)) == (0, {"revoked": True})
        assert (await app.client.get("/api/v1/summary", headers=bearer(token))).status_code == 401
        again = await cli(web_db_url, "revoke-token", stdin=token + "\n")
        assert (again.returncode, json.loads(again.stdout)) == (1, {"revoked": False})

        by_user = await cli(web_db_url, "revoke-token", "--user", "olga")
        assert json.loads(by_user.stdout) == {"user": "olga", "revoked": 1}
        assert (
            await app.client.get("/api/v1/summary", headers=bearer(app.operator_token))
        ).status_code == 401

        unknown = await cli(web_db_url, "disable-user", "nobody")
        assert unknown.returncode == 2 and "no user 'nobody'" in unknown.stderr
        bad = await cli(web_db_url, "create-user", "x", "--sites", "bad site")
        assert bad.returncode == 2 and "site_id" in bad.stderr
