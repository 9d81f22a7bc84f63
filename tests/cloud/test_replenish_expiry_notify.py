"""Restocking gaps closed on SQLite and PostgreSQL: expiring lots become transfer/markdown proposals
(once), rules' notify actions and expiry alerts reach a real signed webhook, and forecast accuracy is
stored per series and served by the API."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from replenish_fixtures import SITE, TODAY, App, Ledger, at, epc, history, master_data, running_app
from sqlalchemy import select, update
from webhook_receiver import Receiver, webhook_receiver

from cloud.alerts import tables as alerts_db
from cloud.core import db
from cloud.lots import expiry as lots_expiry
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.notify.notifier import Notifier, notifier_of
from cloud.replenish import options as replenish_options
from cloud.replenish import run as replenish_run
from cloud.replenish import tables as rt
from cloud.replenish.rules import load_rules
from shelfsense.config import CloudSettings, ColdChainSettings, ReplenishSettings, Settings

SECRET = "hook-secret-for-tests"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as running:
        yield running


@pytest.fixture
async def app(db_url: str, receiver: Receiver) -> AsyncIterator[App]:
    coldchain = ColdChainSettings.model_validate(
        {
            "channels": [
                {"type": "webhook", "name": "buyer", "url": receiver.url("/buyer"), "secret": SECRET},
                {"type": "webhook", "name": "ops", "url": receiver.url("/ops"), "secret": SECRET},
            ],
            "contact_groups": [["ops"]],  # alerts go to ops; buyer only hears rules' notify actions
            "allowed_destinations": ["127.0.0.1"],  # the test's receivers
            "gap_minutes": None,
        }
    )
    settings = Settings(
        cloud=CloudSettings(
            max_event_age_s=None,
            db_url=db_url,
            coldchain=coldchain,
            replenish=ReplenishSettings(enabled=False),
        )
    )
    async for running in running_app(settings):
        yield running


def _notifier(app: App) -> Notifier:
    found = notifier_of(app.app)
    assert found is not None
    return found


async def eventually(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def expiring_lots(engine: Any) -> None:
    """P2: lot A (20 units) on shelf-b where P2 does not sell, lot B (30 units) in the backroom where
    it sells about one a day; both printed to expire in two days. P2's backroom demand comes from
    lot-less units shipped one a day for the last 20 days."""
    await md.import_records(
        engine,
        "lots",
        [
            masterdata_records.LotRecord(sku="P2", lot_code="A", expiry=TODAY + timedelta(days=2)),
            masterdata_records.LotRecord(sku="P2", lot_code="B", expiry=TODAY + timedelta(days=2)),
        ],
    )
    await md.import_records(
        engine,
        "items",
        [
            masterdata_records.ItemRecord(epc=epc(2, i), sku="P2", lot_code="A" if i < 20 else "B")
            for i in range(50)
        ],
    )
    ledger = Ledger(engine, edge="edge-2")
    start = TODAY - timedelta(days=40)
    for i in range(20):
        ledger.move(epc(2, i), None, "shelf-b", at(start))
    for i in range(20, 50):
        ledger.move(epc(2, i), None, "backroom", at(start))
    for d in range(20):
        ledger.move(epc(2, 100 + d), None, "backroom", at(start))
        ledger.move(epc(2, 100 + d), "backroom", None, at(TODAY - timedelta(days=20 - d), 9))
    await ledger.flush()


async def _proposals(engine: Any, kind: str) -> list[dict[str, Any]]:
    p = rt.proposals
    async with engine.connect() as conn:
        rows = (await conn.execute(select(p).where(p.c.kind == kind).order_by(p.c.id))).mappings().all()
    return [replenish_run.public_row(r) for r in rows]


async def test_expiring_stock_becomes_transfer_or_markdown_once(app: App) -> None:
    await master_data(app.engine)
    await expiring_lots(app.engine)
    options = replenish_options.ReplenishOptions(
        settings=ReplenishSettings(enabled=False, expiring_within_days=3)
    )

    dry = await replenish_run.replenish(app.engine, options, today=TODAY, dry_run=True)
    await replenish_run.replenish(app.engine, options, today=TODAY)
    again = await replenish_run.replenish(app.engine, options, today=TODAY)

    transfers = [t for t in await _proposals(app.engine, "transfer") if t["sku"] == "P2"]
    markdowns = await _proposals(app.engine, "markdown")
    assert len(transfers) == 1 and len(markdowns) == 1  # never duplicated by the second run
    move = transfers[0]
    assert (move["source_location"], move["location_id"], move["quantity"]) == ("shelf-b", "backroom", 20.0)
    assert move["reasoning"]["reason"] == "expiring_stock" and move["reasoning"]["lot_id"] == "P2:A"
    assert move["reasoning"]["destination_forecast_per_day"] > move["reasoning"]["forecast_per_day"]
    mark = markdowns[0]
    assert mark["location_id"] == "backroom" and mark["source_location"] is None
    assert mark["reasoning"]["lot_id"] == "P2:B" and 0 < mark["reasoning"]["days_left"] <= 2
    # what the backroom sells before the expiry is not marked down (whole units: how much that is
    # depends on the hour the test runs, the lot expires at midnight)
    sells = mark["reasoning"]["sells_before_expiry"]
    assert sells > 0 and mark["quantity"] == mark["reasoning"]["excess"] == math.ceil(30 - sells - 1e-9)
    assert not any(
        p["kind"] in ("transfer", "markdown") and p["sku"] == "P2"
        for s in again["sites"]
        for p in s["proposals"]
    )
    dry_kinds = sorted(p["kind"] for s in dry["sites"] for p in s["proposals"] if p["sku"] == "P2")
    assert dry_kinds.count("markdown") == 1
    listed = (await app.get("vera", "/api/v1/proposals", site=SITE, status="open")).json()["items"]
    assert {p["id"] for p in listed} >= {move["id"], mark["id"]}


async def test_rule_notify_reaches_the_signed_webhook_after_commit(app: App, receiver: Receiver) -> None:
    await master_data(app.engine)
    await history(app.engine)  # P1 short in the backroom: a purchase from ACME
    rules = load_rules(
        {
            "rules": [
                {
                    "name": "acme orders",
                    "when": {"field": "supplier.id", "op": "eq", "value": "ACME"},
                    "then": [
                        {"action": "notify", "channel": "buyer"},
                        {"action": "notify", "channel": "nobody"},
                    ],
                }
            ]
        }
    )
    options = replenish_options.ReplenishOptions(settings=ReplenishSettings(enabled=False), rules=rules)
    report = await replenish_run.replenish(app.engine, options, today=TODAY, notifier=_notifier(app))
    assert report["unknown_channels"] == ["nobody"]
    purchases = await _proposals(app.engine, "purchase")
    assert purchases, "the scenario must create a purchase"
    await eventually(lambda: len(receiver.bodies("/buyer")) == 1)
    body = receiver.bodies("/buyer")[0]
    assert body["kind"] == "purchase_proposal" and body["site_id"] == SITE
    assert f"#{purchases[0]['id']}" in body["text"] and "acme orders" in body["title"]
    assert receiver.bad_signatures == 0 and receiver.bodies("/ops") == []
    # a second run creates nothing, so nobody is told again
    await replenish_run.replenish(app.engine, options, today=TODAY, notifier=_notifier(app))
    await _notifier(app).wait_delivered()
    assert len(receiver.bodies("/buyer")) == 1


async def test_forecast_accuracy_stored_per_series_and_served(app: App) -> None:
    await master_data(app.engine)
    await history(app.engine)
    options = replenish_options.ReplenishOptions(settings=ReplenishSettings(enabled=False))
    await replenish_run.replenish(app.engine, options, today=TODAY, dry_run=True)
    empty = (await app.get("vera", "/api/v1/forecasts", site=SITE)).json()
    assert empty["total"] == 0  # a dry run writes nothing
    await replenish_run.replenish(app.engine, options, today=TODAY)
    await replenish_run.replenish(app.engine, options, today=TODAY)  # same day: updated, not duplicated
    r = await app.get("vera", "/api/v1/forecasts", site=SITE, product="P1", location="backroom")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1
    row = body["items"][0]
    assert row["run_date"] == TODAY.isoformat() and row["method"] and row["demand_class"]
    assert row["mae"] is not None and row["mae"] >= 0 and row["bias"] is not None
    assert row["mase"] is None or row["mase"] >= 0
    assert abs(row["forecast"] - 2.0) < 1.0  # two units a day were shipped
    other = (await app.get("vera", "/api/v1/forecasts", product="P9")).json()
    assert other["total"] == 0
    assert (await app.client.get("/api/v1/forecasts")).status_code == 401


async def test_expiry_alert_delivered_through_the_alert_channels(app: App, receiver: Receiver) -> None:
    await master_data(app.engine)
    await expiring_lots(app.engine)
    options = lots_expiry.ExpiryOptions(interval_s=0.2, within_days=3)
    async with app.engine.begin() as conn:  # the app's own job registered its first tick 900 s in
        await conn.execute(
            update(db.jobs).where(db.jobs.c.name == lots_expiry.JOB_NAME).values(next_run_at=db.utcnow())
        )
    async with lots_expiry.expiry_job(app.engine, options, notifier=_notifier(app)):
        await eventually(lambda: len(receiver.bodies("/ops")) >= 2)  # A on shelf-b, B in the backroom
    bodies = receiver.bodies("/ops")
    assert receiver.bad_signatures == 0
    assert {b["kind"] for b in bodies} == {"expiry_soon"} and {b["state"] for b in bodies} == {"raised"}
    assert {b["zone"] for b in bodies} == {"shelf-b", "backroom"}
    assert all("Lot expiring soon" in b["title"] and "days left" in b["text"] for b in bodies)
    async with app.engine.connect() as conn:
        rows = (
            (await conn.execute(select(alerts_db.alerts).where(alerts_db.alerts.c.kind == "expiry_soon")))
            .mappings()
            .all()
        )
    assert len(rows) == len({b["alert_id"] for b in bodies}) and all(
        r["notified_at"] is not None for r in rows
    )
    assert receiver.bodies("/buyer") == []
