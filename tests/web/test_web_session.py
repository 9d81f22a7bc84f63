"""Sessions, CSRF, cookies, passwords and the page's helper endpoints, through the real app (ASGI)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest
import web_support
from sqlalchemy import update
from web_support import PASSWORD, WebApp, make_settings, start_web_app

from cloud.admin import revoke_token_async
from cloud.core import db
from cloud.core.errors import AdminError
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db
from cloud.users import tables as users_db
from cloud.web import passwords
from cloud.web.routes import COOKIE, CSRF_HEADER, SECURE_COOKIE
from cloud.web.sessions import set_password_async
from cloud.web.tables import web_sessions
from devices.epc import decode_epc, encode_sgtin96

# The fixtures live in web_support (see its docstring for why not in a conftest.py).
web = web_support.web
web_db_url = web_support.web_db_url

# Engine-independent behaviour: SQLite is enough (the session queries themselves run on both).
SQLITE_ONLY = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)


def set_cookie_header(response: object) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    assert len(headers) == 1, headers
    return str(headers[0])


async def test_password_login_sets_a_strict_httponly_cookie_and_reads_work(web: WebApp) -> None:
    response = await web.client.post("/web/login", json={"username": "vera", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == "vera" and body["role"] == "viewer" and re.fullmatch(r"[0-9a-f]{64}", body["csrf"])
    cookie = set_cookie_header(response)
    assert cookie.startswith(f"{COOKIE}=ssw_")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http + "auto": the loopback demo keeps working
    # The cookie alone authenticates reads on the ordinary API.
    summary = await web.client.get("/api/v1/summary")
    assert summary.status_code == 200, summary.text
    assert (await web.client.get("/web/session")).json() == body


async def test_state_change_needs_the_csrf_token(web: WebApp) -> None:
    csrf = await web.login("olga")
    missing = await web.client.post("/api/v1/stocktakes/run")
    assert (missing.status_code, missing.json()["code"]) == (403, "csrf_failed")
    wrong = await web.client.post("/api/v1/stocktakes/run", headers={CSRF_HEADER: "0" * 64})
    assert (wrong.status_code, wrong.json()["code"]) == (403, "csrf_failed")
    ok = await web.client.post("/api/v1/stocktakes/run", headers={CSRF_HEADER: csrf})
    assert ok.status_code == 200, ok.text


@SQLITE_ONLY
async def test_viewer_session_cannot_act_even_with_csrf(web: WebApp) -> None:
    csrf = await web.login("vera")
    response = await web.client.post("/api/v1/stocktakes/run", headers={CSRF_HEADER: csrf})
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


@SQLITE_ONLY
async def test_bearer_tokens_work_as_before_and_need_no_csrf(web: WebApp) -> None:
    response = await web.client.post(
        "/api/v1/stocktakes/run", headers={"Authorization": f"Bearer {web.operator_token}"}
    )
    assert response.status_code == 200, response.text
    refused = await web.client.get("/api/v1/summary", headers={"Authorization": "Bearer nope-nope-nope"})
    assert refused.status_code == 401
    assert (await web.client.get("/api/v1/summary")).status_code == 401  # no cookie, no header


async def test_token_login_and_refusals(web: WebApp) -> None:
    ok = await web.client.post("/web/login", json={"token": web.viewer_token})
    assert ok.status_code == 200 and ok.json()["user"] == "vera"
    # The session cookie is a new secret, not the API token.
    assert web.viewer_token not in set_cookie_header(ok)
    web.client.cookies.clear()
    for body in (
        {"token": web.edge_token},  # an edge token is not a user
        {"token": "ssu_" + "x" * 43},
        {"username": "vera", "password": "wrong password"},
        {"username": "nobody", "password": PASSWORD},
    ):
        refused = await web.client.post("/web/login", json=body)
        assert (refused.status_code, refused.json()["code"]) == (401, "login_failed"), body
        assert "set-cookie" not in refused.headers
    await revoke_token_async(web.engine, web.viewer_token)
    assert (await web.client.post("/web/login", json={"token": web.viewer_token})).status_code == 401
    assert (await web.client.post("/web/login", json={})).status_code == 422
    extra = await web.client.post("/web/login", json={"token": "x", "admin": True})
    assert extra.status_code == 422


@SQLITE_ONLY
async def test_login_refuses_cross_origin_and_form_posts(web: WebApp) -> None:
    body = {"username": "olga", "password": PASSWORD}
    evil = await web.client.post("/web/login", json=body, headers={"Origin": "http://evil.example"})
    assert (evil.status_code, evil.json()["code"]) == (403, "cross_origin")
    same = await web.client.post("/web/login", json=body, headers={"Origin": "http://testserver"})
    assert same.status_code == 200
    plain = {"Content-Type": "text/plain"}
    form = await web.client.post("/web/login", content=b'{"token": "x"}', headers=plain)
    assert form.status_code in (415, 422)  # never a session


async def test_logout_ends_the_session(web: WebApp) -> None:
    csrf = await web.login("olga")
    stolen = web.client.cookies.get(COOKIE)
    assert (await web.client.post("/web/logout")).status_code == 403  # CSRF-checked too
    out = await web.client.post("/web/logout", headers={CSRF_HEADER: csrf})
    assert out.status_code == 200 and out.json() == {"ended": True}
    assert (await web.client.get("/api/v1/summary")).status_code == 401
    # Replaying the old cookie does not work either: the row is gone.
    web.client.cookies.set(COOKIE, stolen or "")
    replay = await web.client.get("/api/v1/summary")
    assert replay.status_code == 401


async def test_expired_session_is_refused(web: WebApp) -> None:
    await web.login("vera")
    async with db.write_transaction(web.engine) as conn:
        await conn.execute(update(web_sessions).values(expires_at=db.utcnow() - timedelta(seconds=1)))
    assert (await web.client.get("/api/v1/summary")).status_code == 401
    assert (await web.client.get("/web/session")).status_code == 401


async def test_role_change_applies_to_live_sessions(web: WebApp) -> None:
    csrf = await web.login("olga")
    async with db.write_transaction(web.engine) as conn:
        await conn.execute(
            update(users_db.users).where(users_db.users.c.name == "olga").values(role="viewer")
        )
    response = await web.client.post("/api/v1/stocktakes/run", headers={CSRF_HEADER: csrf})
    assert response.status_code == 403


async def test_changing_a_password_ends_sessions(web: WebApp) -> None:
    await web.login("vera")
    await set_password_async(web.engine, "vera", "another long password")
    assert (await web.client.get("/api/v1/summary")).status_code == 401
    with pytest.raises(AdminError, match="at least"):
        await set_password_async(web.engine, "vera", "short")
    with pytest.raises(AdminError, match="no user"):
        await set_password_async(web.engine, "ghost", PASSWORD)


@SQLITE_ONLY
async def test_failed_logins_are_rate_limited(web: WebApp) -> None:
    for _ in range(10):
        r = await web.client.post("/web/login", json={"username": "vera", "password": "wrong password"})
        assert r.status_code == 401
    blocked = await web.client.post("/web/login", json={"username": "vera", "password": PASSWORD})
    assert (blocked.status_code, blocked.json()["code"]) == (429, "too_many_attempts")


@pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
async def test_secure_cookie_over_https_or_when_forced(web_db_url: str) -> None:
    async for app in start_web_app(make_settings(web_db_url), base_url="https://testserver"):
        cookie = set_cookie_header(
            await app.client.post("/web/login", json={"username": "vera", "password": PASSWORD})
        )
        assert cookie.startswith(f"{SECURE_COOKIE}=") and "Secure" in cookie
        assert (await app.client.get("/api/v1/summary")).status_code == 200
    async for app in start_web_app(make_settings(web_db_url, secure_cookies="always")):
        cookie = set_cookie_header(
            await app.client.post("/web/login", json={"username": "vera", "password": PASSWORD})
        )
        assert "Secure" in cookie


@SQLITE_ONLY
async def test_no_secrets_in_logs(web: WebApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await web.client.post("/web/login", json={"token": web.viewer_token})
    await web.client.post("/web/login", json={"username": "olga", "password": PASSWORD})
    session = web.client.cookies.get(COOKIE) or ""
    assert session
    for secret in (web.viewer_token, PASSWORD, session):
        assert secret not in caplog.text


def test_password_hashes() -> None:
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert passwords.hash_password(PASSWORD) != stored  # salted
    assert passwords.verify_password(PASSWORD, stored)
    assert not passwords.verify_password(PASSWORD + "x", stored)
    assert not passwords.verify_password(PASSWORD, "scrypt$3$8$1$AAAA$AAAA")  # tampered cost: refused
    assert not passwords.verify_password(PASSWORD, "plain")
    assert passwords.needs_rehash("scrypt$1024$8$1$AAAA$AAAA") and not passwords.needs_rehash(stored)
    with pytest.raises(passwords.PasswordError):
        passwords.hash_password("x" * 1025)


@SQLITE_ONLY
async def test_gtin_and_serial_to_sgtin96(web: WebApp) -> None:
    headers = {"Authorization": f"Bearer {web.viewer_token}"}
    expected = encode_sgtin96("0614141", "812345", 6789)  # the TDS example GTIN 80614141123458
    gtin = "80614141123458"
    r = await web.client.get(
        "/web/api/sgtin", params={"gtin": gtin, "serial": 6789, "prefix_length": 7}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["candidates"] == [expected] and r.json()["known"] == []
    decoded = decode_epc(expected)
    assert (decoded.gtin, decoded.serial) == ("80614141123458", "6789")
    # Without a prefix length every partition is a candidate; the one this cloud knows is "known".
    async with db.write_transaction(web.engine) as conn:
        await conn.execute(
            stock_db.stock_items.insert().values(
                site_id="site-1", epc=expected, location="shelf-1", present=True, updated_at=db.utcnow()
            )
        )
    r = await web.client.get("/web/api/sgtin", params={"gtin": gtin, "serial": 6789}, headers=headers)
    assert len(r.json()["candidates"]) == 7 and r.json()["known"] == [expected]
    wrong = gtin[:-1] + "9"
    bad = await web.client.get("/web/api/sgtin", params={"gtin": wrong, "serial": 1}, headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "bad_check_digit")
    anonymous = await web.client.get("/web/api/sgtin", params={"gtin": gtin, "serial": 1})
    assert anonymous.status_code == 401


async def test_item_identity_returns_registered_product(web: WebApp) -> None:
    epc = encode_sgtin96("0614141", "812345", 1)
    async with db.write_transaction(web.engine) as conn:
        now = db.utcnow()
        await conn.execute(
            masterdata_db.products.insert().values(sku="SKU-1", name="<b>Milk</b>", updated_at=now)
        )
        await conn.execute(masterdata_db.items.insert().values(epc=epc, sku="SKU-1", updated_at=now))
    headers = {"Authorization": f"Bearer {web.viewer_token}"}
    r = await web.client.get(f"/web/api/items/{epc.lower()}/identity", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["epc"] == epc and body["gtin"] == "80614141123458" and body["serial"] == "1"
    assert body["registered"]["name"] == "<b>Milk</b>"  # data stays data; the page escapes it
    bad = await web.client.get("/web/api/items/<script>/identity", headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "bad_epc")


@SQLITE_ONLY
async def test_zone_limits_for_the_live_sensor_view(web: WebApp) -> None:
    headers = {"Authorization": f"Bearer {web.viewer_token}"}
    r = await web.client.get("/web/api/zones", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"site_id": "site-1", "zone": "cold-1", "min_temp_c": 2.0, "max_temp_c": 8.0, "max_humidity": None}
    ]
    other = await web.client.get("/web/api/zones", params={"site": "site-2"}, headers=headers)
    assert other.json() == []
    anonymous = await web.client.get("/web/api/zones")
    assert anonymous.status_code == 401


@SQLITE_ONLY
async def test_page_and_static_files_carry_security_headers(web: WebApp) -> None:
    page = await web.client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    script = await web.client.get("/ui/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"
    assert (await web.client.get("/ui", follow_redirects=False)).status_code == 307
    assert (await web.client.get("/ui/static/../routes.py")).status_code == 404


def test_static_files_ship_in_the_package_and_never_write_html() -> None:
    static = resources.files("cloud.web") / "static"
    names = {p.name for p in static.iterdir()}
    assert {"index.html", "app.js", "app.css"} <= names
    source = (static / "app.js").read_text(encoding="utf-8")
    script = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
        assert forbidden not in script, forbidden
    html = (static / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in html  # no inline code
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"web/static/*"' in pyproject
