"""What-if over HTTP on a cloud database built like the restocking tests' (SQLite and PostgreSQL), and
the command line on the shipped examples."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from replenish_fixtures import SITE, App, history, master_data, replenish_settings, running_app

from cloud.core import db
from cloud.core.migrate import ensure_schema
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.whatif.cli import EXIT_USAGE
from shelfsense.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "whatif"

SCENARIO = f"""
name = "ACME stops"
site_id = "{SITE}"
[simulation]
days = 40
runs = 40
seed = 2
[[policies]]
name = "current"
[[policies]]
name = "sl-99"
service_level = 0.99
[[shocks]]
name = "acme-stop"
kind = "supplier_stop"
supplier = "ACME"
start = 0
days = 25
"""


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    async for a in running_app(replenish_settings(db_url)):
        await master_data(a.engine)
        # P1 keeps 14 days once received: stock without a lot expires after the shelf life from today.
        await md.import_records(
            a.engine, "products", [masterdata_records.ProductRecord(sku="P1", name="p1", shelf_life_days=14)]
        )
        await history(a.engine)  # P1: 10 on hand in the backroom, 2 shipped a day for 30 days
        yield a


async def _post(
    app: App, user: str, body: str, path: str = "/api/v1/whatif", **params: str
) -> httpx.Response:
    headers = {**app.auth(user), "Content-Type": "application/toml"}
    return await app.client.post(path, content=body.encode(), headers=headers, params=params)


async def test_whatif_on_the_cloud_state(app: App) -> None:
    response = await _post(app, "oscar", SCENARIO, sku="P1")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["site"] == SITE and "P1" in str(report["scenarios"][0]["items"])
    rows = {(r["name"], r["policy"]): r for r in report["scenarios"]}
    assert set(rows) == {
        ("baseline", "current"),
        ("baseline", "sl-99"),
        ("acme-stop", "current"),
        ("acme-stop", "sl-99"),
    }
    base, stop = rows[("baseline", "current")], rows[("acme-stop", "current")]
    # 10 on hand, 2 a day, 7 days' lead time: the baseline reorders at once; the stop leaves the
    # backroom empty from day 5 until an order placed at the restart (day 25) lands on day 32.
    [backroom] = [i for i in base["items"] if i["location"] == "backroom"]
    assert backroom["sku"] == "P1" and backroom["avg_inventory_value"] > 0
    assert stop["lost_units"] > base["lost_units"] + 40
    assert stop["fill_rate"] < base["fill_rate"] - 0.3
    assert base["ci95"]["fill_rate"][0] <= base["fill_rate"] <= base["ci95"]["fill_rate"][1]
    assert len(base["daily"]["stockouts"]) == 40

    png = await _post(app, "oscar", SCENARIO, "/api/v1/whatif/png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_whatif_refuses_what_it_cannot_or_must_not_run(app: App) -> None:
    assert (await _post(app, "vera", SCENARIO)).status_code == 403
    bad = await _post(app, "oscar", "name = ")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_scenario"
    typo = await _post(app, "oscar", SCENARIO + "[[shocks]]\nkind = 'demand'\nfactr = 2\n")
    assert typo.status_code == 422 and "factr" in typo.text
    huge = await _post(app, "oscar", SCENARIO.replace("runs = 40", "runs = 1500"))
    assert huge.status_code == 413
    nowhere = await _post(app, "oscar", SCENARIO.replace(SITE, "no-such-site"))
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "site_not_found"
    as_json = await app.client.post(
        "/api/v1/whatif", content=b"[1, 2]", headers={**app.auth("oscar"), "Content-Type": "application/json"}
    )
    assert as_json.status_code == 422
    # The service still answers afterwards.
    assert (await _post(app, "oscar", SCENARIO)).status_code == 200


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_cli_runs_every_shipped_example(
    example: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    png = tmp_path / "chart.png"
    assert main(["whatif", str(EXAMPLES / example), "--json", "--png", str(png)]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in report["scenarios"]]
    assert names[0] == "baseline" and len(set(names)) >= 2
    for row in report["scenarios"]:
        for key in (
            "fill_rate",
            "stockout_days",
            "lost_units",
            "avg_inventory_value",
            "turnover",
            "expired_units",
            "spend",
        ):
            assert key in row
        assert 0.0 <= row["fill_rate"] <= 1.0
    assert png.read_bytes().startswith(b"\x89PNG")
    shocked = [
        r
        for r in report["scenarios"]
        if r["name"] != "baseline" and r["policy"] == report["scenarios"][0]["policy"]
    ]
    assert any(r["lost_units"] > report["scenarios"][0]["lost_units"] for r in shocked)


def test_cli_table_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["whatif", str(EXAMPLES / "supplier_stop.toml")]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "fill rate" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('site_id = "x"\n[simulation]\nruns = 0\n')
    assert main(["whatif", str(bad)]) == EXIT_USAGE
    assert "runs" in capsys.readouterr().err
    no_site = tmp_path / "no_site.toml"
    no_site.write_text('site_id = "x"\n')
    assert main(["whatif", str(no_site)]) == EXIT_USAGE  # needs --db


def test_cli_loads_the_site_from_the_database(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def prepare() -> None:
        engine = db.create_engine(db_url)
        try:
            await ensure_schema(engine)
            await master_data(engine)
            await history(engine)
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    scenario = tmp_path / "stop.toml"
    scenario.write_text(SCENARIO)
    assert main(["whatif", str(scenario), "--db", db_url, "--json", "--sku", "P1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["site"] == SITE
    rows = {(r["name"], r["policy"]): r for r in report["scenarios"]}
    assert rows[("acme-stop", "current")]["lost_units"] > rows[("baseline", "current")]["lost_units"] + 40
    assert any(
        i["sku"] == "P1" and i["location"] == "backroom" for i in rows[("baseline", "current")]["items"]
    )
