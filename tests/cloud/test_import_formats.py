"""The import formats reference is generated from the validating models and up to date, and the
replenishment kinds import from the CLI like master data."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from replenish_fixtures import SITE, TODAY, App, master_data, replenish_settings, running_app
from sqlalchemy import create_engine, select

from cloud.masterdata import records as masterdata_records
from cloud.masterdata.import_formats import render_markdown
from cloud.replenish import masterdata as rmd
from cloud.replenish import tables as rt
from shelfsense.cli import main as cli_main

DOC = Path(__file__).resolve().parents[2] / "docs" / "import-formats.md"


def test_reference_is_generated_from_the_models_and_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text == render_markdown(), (
        "run: python -m cloud.masterdata.import_formats > docs/import-formats.md"
    )
    sections = dict(re.findall(r"## `(\w+)`\n(.*?)(?=\n## |\Z)", text, re.S))
    models = {**{k: s.model for k, s in masterdata_records.SPECS.items()}, **rmd.MODELS}
    assert set(sections) == set(models)
    for kind, model in models.items():
        columns = re.findall(r"^\| `(\w+)` \| (yes|no) \|", sections[kind], re.M)
        assert [c for c, _ in columns] == list(model.model_fields), kind
        required = {c for c, flag in columns if flag == "yes"}
        assert required == {n for n, f in model.model_fields.items() if f.is_required()}, kind
    assert "| `storage_temp_min_c` | no | number | °C |" in sections["products"]


def test_cli_imports_replenishment_kinds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    files = {
        "products": "sku,name\nP1,Milk\n",
        "suppliers": "supplier_id,name,lead_time_days\nACME,Acme,3\n",
        "product_suppliers": "sku,supplier_id,pack_size,unit_cost,preferred\nP1,ACME,12,3.2,true\n",
    }
    for kind, text in files.items():
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        assert cli_main(["cloud", "import", str(path), "--kind", kind, "--db", db, "--json"]) == 0
        assert '"imported": 1' in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,supplier_id,pack_size\nP1,NOBODY,0\n", encoding="utf-8")
    assert cli_main(["cloud", "import", str(bad), "--kind", "product_suppliers", "--db", db]) == 1
    assert "pack_size" in capsys.readouterr().err
    engine = create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(select(rt.product_suppliers.c.sku, rt.product_suppliers.c.pack_size)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("P1", 12.0)]


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    async for a in running_app(replenish_settings(db_url)):
        await master_data(a.engine)
        yield a


async def test_imported_demand_feeds_the_forecast(app: App) -> None:
    days = [TODAY - timedelta(days=d) for d in range(1, 91)]
    csv_text = "site_id,location_id,sku,day,quantity\n" + "".join(f"{SITE},till,P2,{d},5\n" for d in days)
    headers = {**app.auth("ada"), "Content-Type": "text/csv"}
    refused = await app.client.post(
        "/api/v1/replenish/demand/import",
        content="site_id,location_id,sku,day,quantity\ns,l,P2,x,-1\n",
        headers=headers,
    )
    assert refused.status_code == 422
    assert {e["column"] for e in refused.json()["errors"]} == {"day", "quantity"}
    imported = await app.client.post("/api/v1/replenish/demand/import", content=csv_text, headers=headers)
    assert imported.json() == {"imported": 90}
    run = await app.post("ada", "/api/v1/proposals/run", {"site": SITE})
    assert run.status_code == 200, run.text
    forecasts = (await app.get("vera", "/api/v1/forecasts", product="P2")).json()["items"]
    assert [(f["location_id"], f["history_days"]) for f in forecasts] == [("till", 90)]
    assert forecasts[0]["forecast"] == pytest.approx(5.0, abs=0.5)
