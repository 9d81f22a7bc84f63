"""Money in the currency's precision (ISO 4217 minor units), in the API and the ERP export."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import replenish_fixtures
from replenish_fixtures import SITE, App, history, master_data, replenish_settings, running_app

from cloud.replenish.money import decimals, money


def test_money_rounds_half_up_to_the_minor_unit() -> None:
    assert 12 * 3.2 == 38.400000000000006  # the binary float the planner computes
    assert money(12 * 3.2, "EUR") == 38.4 and repr(money(12 * 3.2, "EUR")) == "38.4"
    assert money(2.675, "USD") == 2.68  # half-up on the decimal written, not the binary 2.67499...
    assert (money(1234.5, "JPY"), money(1.2345, "KWD")) == (1235.0, 1.235)
    assert (decimals("EUR"), decimals("jpy"), decimals("BHD")) == (2, 0, 3)


@pytest.fixture
async def app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    monkeypatch.setattr(replenish_fixtures, "COST", 3.2)  # x 12 per pack = 38.400000000000006
    async for a in running_app(replenish_settings(db_url)):
        await master_data(a.engine)
        await history(a.engine)
        yield a


async def test_amounts_in_api_and_export_have_the_currency_precision(app: App) -> None:
    run = await app.post("ada", "/api/v1/proposals/run", {"site": SITE})
    assert run.status_code == 200, run.text
    (made,) = run.json()["sites"][0]["proposals"]
    assert (made["quantity"], made["unit_cost"], made["amount"]) == (12.0, 3.2, 38.4)
    assert made["reasoning"]["order_value"] == 38.4
    approve = await app.post("oscar", f"/api/v1/proposals/{made['id']}/approve", {})
    assert approve.status_code == 200, approve.text
    kpis = await app.get("vera", "/api/v1/kpis")
    (row,) = kpis.json()["items"]
    assert row["unit_cost"] == 3.2 and row["cogs"] == money(row["outbound_units"] * 3.2, "EUR")
    for path in ("/api/v1/proposals", f"/api/v1/proposals/{made['id']}"):
        text = (await app.get("vera", path)).text
        amounts = re.findall(r'"(?:unit_cost|amount|order_amount|order_value)":([\d.]+)', text)
        assert amounts and all(len(a.split(".")[-1]) <= 2 for a in amounts), amounts
    export = await app.get("ada", "/api/v1/proposals/export", format="csv", status="all")
    assert export.status_code == 200 and ",38.4," in export.text, export.text
