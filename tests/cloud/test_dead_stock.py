# ruff: noqa: RUF001  (the expected Chinese messages use full-width punctuation)
"""Dead stock on SQLite and PostgreSQL: the rule (both ages, table-driven), the list the page and
``GET /api/v1/dead-stock`` show (value in the currency's precision), the planner no longer calling
goods received minutes ago dead, and the ``dead_stock`` alert delivered through the alert channels
(a real signed webhook in English, a real aiosmtpd mailbox in Chinese), resolved once the lot ships."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from email.message import Message
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from replenish_fixtures import SITE, TODAY, App, Ledger, epc, master_data, running_app
from sqlalchemy import select
from webhook_receiver import Receiver, webhook_receiver

from cloud.alerts import tables as alerts_db
from cloud.core import db
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.notify.notifier import Notifier, notifier_of
from cloud.replenish import dead_stock as ds
from cloud.replenish import masterdata as rmd
from cloud.replenish import options as replenish_options
from cloud.replenish import run as replenish_run
from shelfsense.config import CloudSettings, ColdChainSettings, ReplenishSettings, Settings
from shelfsense.services import free_port

SECRET = "dead-stock-hook-secret"
RULE = ds.DeadStockRule(receipt_days=90, outbound_days=60)


@pytest.mark.parametrize(
    ("case", "since_receipt", "since_outbound", "dead"),
    [
        ("just received, never shipped", 0.01, None, False),
        ("received 89 days ago, never shipped", 89.9, None, False),
        ("never moved out for 90 days", 90.0, None, True),
        ("never moved out for 400 days", 400.0, None, True),
        ("old, moved out recently", 200.0, 2.0, False),
        ("old, moved out 59 days ago", 200.0, 59.0, False),
        ("old, nothing moved out for 60 days", 200.0, 60.0, True),
        ("received again recently, last shipment long ago", 3.0, 300.0, False),
        # The last shipment was before this receipt: the idle time counts from the receipt.
        ("received 95 days ago, last shipment 300 days ago", 95.0, 300.0, True),
        ("receipt unknown", None, None, False),
    ],
)
def test_dead_stock_rule(
    case: str, since_receipt: float | None, since_outbound: float | None, dead: bool
) -> None:
    assert RULE.is_dead(since_receipt, since_outbound) is dead, case


def test_both_thresholds_are_configurable() -> None:
    assert ds.DeadStockRule(receipt_days=7, outbound_days=7).is_dead(8.0, None)
    assert not ds.DeadStockRule(receipt_days=30, outbound_days=7).is_dead(8.0, None)
    assert not ds.DeadStockRule(receipt_days=7, outbound_days=30).is_dead(20.0, 10.0)
    settings = ReplenishSettings(dead_stock_receipt_days=14, dead_stock_days=21)
    assert ds.stock_rule(settings) == ds.DeadStockRule(14.0, 21.0)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(BytesParser(policy=default_policy).parsebytes(envelope.content))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as running:
        yield running


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
async def app(db_url: str, receiver: Receiver, smtp: tuple[Mailbox, int]) -> AsyncIterator[App]:
    coldchain = ColdChainSettings.model_validate(
        {
            "channels": [
                {"type": "webhook", "name": "ops", "url": receiver.url("/ops"), "secret": SECRET},
                {
                    "type": "smtp",
                    "name": "cn-mail",
                    "host": "127.0.0.1",
                    "port": smtp[1],
                    "from_addr": "shelfsense@example.com",
                    "to": ["stock@example.com"],
                    "language": "zh-CN",
                },
            ],
            "allowed_destinations": ["127.0.0.1"],  # the test's receivers
            "gap_minutes": None,
            "escalation_minutes": None,
        }
    )
    replenish = ReplenishSettings(
        enabled=False, dead_stock_alerts=False, dead_stock_days=60, dead_stock_receipt_days=90
    )
    settings = Settings(
        cloud=CloudSettings(max_event_age_s=None, db_url=db_url, coldchain=coldchain, replenish=replenish)
    )
    async for running in running_app(settings):
        yield running


def ago(days: float = 0.0, minutes: float = 0.0) -> datetime:
    return db.utcnow() - timedelta(days=days, minutes=minutes)


async def seed(engine: Any) -> tuple[Ledger, dict[str, list[str]]]:
    """Five lots, one per case: only L-OLD (never shipped) and L-SLOW (last shipped 150 days ago)
    are dead; L-MOVED sits 120 days after receipt, moved between shelves yesterday (not a receipt)."""
    await master_data(engine, products=3, items_per_product=0)
    await rmd.import_text(
        engine, "product_suppliers", "sku,supplier_id,pack_size,unit_cost\nP3,ACME,1,0.35\n", "csv"
    )
    lots = {"L-NEW": (1, 5), "L-MOVED": (1, 2), "L-MOV": (2, 10), "L-SLOW": (2, 4), "L-OLD": (3, 3)}
    lot_rows = [
        masterdata_records.LotRecord(sku=f"P{product}", lot_code=lot) for lot, (product, _) in lots.items()
    ]
    await md.import_records(engine, "lots", lot_rows)
    items = []
    serial = 0
    tags: dict[str, list[str]] = {}
    for lot, (product, count) in lots.items():
        tags[lot] = [epc(product, serial + i) for i in range(count)]
        items += [
            masterdata_records.ItemRecord(epc=tag, sku=f"P{product}", lot_code=lot) for tag in tags[lot]
        ]
        serial += count
    await md.import_records(engine, "items", items)
    ledger = Ledger(engine)
    for tag in tags["L-NEW"]:
        ledger.move(tag, None, "backroom", ago(minutes=10))
    for tag in tags["L-MOVED"]:
        ledger.move(tag, None, "backroom", ago(days=120))
        ledger.move(tag, "backroom", "shelf-b", ago(days=1))
    for tag in tags["L-MOV"]:
        ledger.move(tag, None, "backroom", ago(days=120))
    ledger.move(tags["L-MOV"][0], "backroom", None, ago(days=2))
    for tag in tags["L-SLOW"]:
        ledger.move(tag, "dock-1", "cold-1", ago(days=200))  # from a dock: a receipt
    ledger.move(tags["L-SLOW"][0], "cold-1", None, ago(days=150))
    for tag in tags["L-OLD"]:
        ledger.move(tag, None, "shelf-b", ago(days=120))
    await ledger.flush()
    return ledger, tags


async def test_dead_stock_list_served_with_money_in_the_currency_precision(app: App) -> None:
    await seed(app.engine)
    r = await app.get("vera", "/api/v1/dead-stock", site=SITE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["currency"], body["decimals"], body["receipt_days"], body["outbound_days"]) == (
        "EUR",
        2,
        90,
        60,
    )
    rows = {(i["sku"], i["lot_code"], i["location"]): i for i in body["items"]}
    assert set(rows) == {("P3", "L-OLD", "shelf-b"), ("P2", "L-SLOW", "cold-1"), ("P1", "L-MOVED", "shelf-b")}
    old = rows["P3", "L-OLD", "shelf-b"]
    assert old["quantity"] == 3 and old["days_since_outbound"] is None and old["last_outbound_at"] is None
    assert 119.9 <= old["days_since_receipt"] <= 120.1
    assert old["unit_cost"] == 0.35 and old["value"] == 1.05  # 3 x 0.35 = 1.0499999999999998 in floats
    slow = rows["P2", "L-SLOW", "cold-1"]
    assert slow["quantity"] == 3 and 149.9 <= slow["days_since_outbound"] <= 150.1 and slow["value"] == 30.0
    assert (
        119.9 <= rows["P1", "L-MOVED", "shelf-b"]["days_since_receipt"] <= 120.1
    )  # a shelf move is no receipt
    assert body["total_value"] == 1.05 + 30.0 + 20.0
    assert body["items"][0]["lot_code"] == "L-SLOW"  # oldest receipt first
    other = (await app.get("vera", "/api/v1/dead-stock", site="elsewhere")).json()
    assert other["items"] == [] and other["total_value"] == 0
    assert (await app.client.get("/api/v1/dead-stock")).status_code == 401


async def test_the_planner_no_longer_calls_goods_received_minutes_ago_dead(app: App) -> None:
    await seed(app.engine)
    options = replenish_options.ReplenishOptions(
        settings=ReplenishSettings(enabled=False, dead_stock_days=60)
    )
    report = await replenish_run.replenish(app.engine, options, today=TODAY, dry_run=True)
    dead = {
        (a["sku"], a["location_id"])
        for s in report["sites"]
        for a in s["alerts"]
        if a["kind"] == "dead_stock"
    }
    assert ("P1", "backroom") not in dead  # L-NEW, received ten minutes ago, never shipped
    assert ("P3", "shelf-b") in dead and ("P2", "cold-1") in dead
    flagged = next(a for s in report["sites"] for a in s["alerts"] if a["sku"] == "P3")
    assert flagged["days_since_receipt"] == 120 and flagged["days_without_outbound"] is None


def _notifier(app: App) -> Notifier:
    found = notifier_of(app.app)
    assert found is not None
    return found


async def eventually(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_dead_stock_alert_delivered_in_each_channels_language_and_resolved(
    app: App, receiver: Receiver, smtp: tuple[Mailbox, int]
) -> None:
    mailbox = smtp[0]
    ledger, tags = await seed(app.engine)
    options = ds.DeadStockOptions(rule=RULE, interval_s=0.2)
    async with ds.dead_stock_job(app.engine, options, notifier=_notifier(app)):
        await eventually(lambda: len(receiver.bodies("/ops")) >= 3 and len(mailbox.messages) >= 3)
    bodies = receiver.bodies("/ops")
    assert receiver.bad_signatures == 0 and len(bodies) == 3
    assert {b["kind"] for b in bodies} == {"dead_stock"} and {b["state"] for b in bodies} == {"raised"}
    old = next(b for b in bodies if "L-OLD" in b["text"])
    assert (
        old["zone"] == "shelf-b"
        and old["unit"] == "days"
        and old["title"].startswith("Dead stock in zone shelf-b")
    )
    assert old["text"] == "P3 lot L-OLD: 3 units on hand, 120 days since receipt, never shipped from here."
    assert (round(old["value"]), old["limit"]) == (120, 60)  # days without outbound, against the rule's
    mails = {m["X-ShelfSense-Alert"]: m for m in mailbox.messages}
    mail = mails[old["alert_id"]]
    assert mail["Subject"] == "[ShelfSense 警告] 区域 shelf-b（site-1）呆滞库存：已触发"
    content = mail.get_content()
    assert "P3 批次 L-OLD：库存 3 件，入库已 120 天，从未出库。" in content
    assert "数值: 120 天" in content and "限值: 60 天" in content
    slow = next(b for b in bodies if "L-SLOW" in b["text"])
    assert (
        slow["text"]
        == "P2 lot L-SLOW: 3 units on hand, 200 days since receipt, 150 days since the last outbound."
    )

    # A second check opens nothing new; once L-OLD ships, its alert resolves.
    again = await ds.check_dead_stock(app.engine, RULE)
    assert again.opened == [] and again.resolved == []
    for tag in tags["L-OLD"]:
        ledger.move(tag, "shelf-b", None, ago())
    await ledger.flush()
    after = await ds.check_dead_stock(app.engine, RULE)
    assert after.resolved == [int(old["alert_id"])] and after.opened == []
    async with app.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(alerts_db.alerts).where(alerts_db.alerts.c.id == int(old["alert_id"]))
                )
            )
            .mappings()
            .one()
        )
    assert row["status"] == "resolved" and row["resolved_by"] == "system"
    listed = (await app.get("vera", "/api/v1/alerts", site=SITE, kind="dead_stock", status="open")).json()
    assert {a["zone"] for a in listed["items"]} == {"cold-1", "shelf-b"}  # L-SLOW and L-MOVED
