# ruff: noqa: RUF001  (the expected Chinese text uses full-width punctuation)
"""Issue 15 item 3's dead stock view in Debian's Chromium, at 1366x900 and 820x1180, in English and
Simplified Chinese: which lots are listed (received long ago and not shipped for long; never the
goods received minutes ago), their values in the currency's precision, both ages, and the
dead_stock alert in the alerts table in days. Screenshots go to test-artifacts/ as
web-view-deadstock-<locale>-<size>.png."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from test_web_browser import LiveCloud, PageFactory, browser, login, move, new_page, shot, sync_api
from test_web_browser import pytestmark as browser_marks

from cloud.replenish.dead_stock import DeadStockRule, check_dead_stock

pytestmark = browser_marks
__all__ = ["browser", "new_page"]  # fixtures used by name

SIZES = {"desktop": {"width": 1366, "height": 900}, "tablet": {"width": 820, "height": 1180}}
LOCALES = {"en": "en-US", "zh": "zh-CN"}


def tags(product: int, first: int, count: int) -> list[str]:
    return [f"3034{product:04X}{first + i:016X}" for i in range(count)]


def ago(days: float = 0, minutes: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days, minutes=minutes)).isoformat()


def csv_import(cloud: LiveCloud, kind: str, text: str) -> None:
    response = httpx.post(
        f"{cloud.url}/api/v1/replenish/{kind}/import",
        content=text,
        headers={"Authorization": f"Bearer {cloud.admin_token}", "Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    """Cream (lot C-OLD: 3 units, 120 days on shelf-1, never shipped; unit cost 0.35), juice (lot
    J-SLOW: 5 left in the backroom, the last shipped 100 days ago) and milk (lot M-NEW, received ten
    minutes ago, never shipped): the first two are dead stock, milk never is."""
    db_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('web-deadstock') / 'cloud.db'}"
    live = LiveCloud(db_url).start()
    products = {"P1": "Cream 200 ml", "P2": "Orange juice 1 l", "P3": "Milk 1 l"}
    lots = {"P1": "C-OLD", "P2": "J-SLOW", "P3": "M-NEW"}
    for sku, name in products.items():
        assert live.admin("PUT", f"/api/v1/products/{sku}", {"sku": sku, "name": name}).status_code == 200
        lot = {"sku": sku, "lot_code": lots[sku]}
        assert live.admin("PUT", f"/api/v1/lots/{sku}/{lots[sku]}", lot).status_code == 200
    cream, juice, milk = tags(1, 0, 3), tags(2, 0, 6), tags(3, 0, 4)
    items = [
        {"epc": e, "sku": f"P{p}", "lot_code": lots[f"P{p}"]}
        for p, group in ((1, cream), (2, juice), (3, milk))
        for e in group
    ]
    assert live.admin("POST", "/api/v1/master/items/import", items).status_code == 200
    csv_import(live, "suppliers", "supplier_id,name,lead_time_days,lead_time_std_days,moq\nACME,Acme,7,0,0\n")
    csv_import(
        live,
        "product_suppliers",
        "sku,supplier_id,pack_size,unit_cost,preferred\nP1,ACME,1,0.35,true\nP2,ACME,6,1.2,true\nP3,ACME,12,0.99,true\n",
    )
    events = [move(e, None, "shelf-1", ago(days=120)) for e in cream]
    events += [move(e, None, "backroom", ago(days=150)) for e in juice]
    events.append(move(juice[0], "backroom", None, ago(days=100)))
    events += [move(e, None, "backroom", ago(minutes=10)) for e in milk]
    live.post_events(events)
    asyncio.run(open_alerts(db_url))
    yield live
    live.stop()


async def open_alerts(db_url: str) -> None:
    engine = create_async_engine(db_url)
    try:
        opened = (await check_dead_stock(engine, DeadStockRule(90, 90))).opened
        assert len(opened) == 2
    finally:
        await engine.dispose()


def finish(page: Any, name: str) -> None:
    """Nothing wider than the screen, a screenshot, no JS errors."""
    assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 1
    shot(page, name)
    assert page.js_errors == []


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("locale", LOCALES)
def test_dead_stock_view(cloud: LiveCloud, new_page: PageFactory, locale: str, size: str) -> None:
    page = new_page(locale=LOCALES[locale], viewport=SIZES[size])
    login(page, "olga")
    page.click("nav a[data-view=deadstock]")
    expect = sync_api.expect
    table = page.locator("#deadstock-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    cream = table.locator("tr[data-lot='P1/C-OLD/shelf-1']")
    juice = table.locator("tr[data-lot='P2/J-SLOW/backroom']")
    expect(page.locator("tr[data-lot^='P3/']")).to_have_count(0)  # received ten minutes ago
    expect(cream).to_contain_text("Cream 200 ml (P1)")
    expect(cream).to_contain_text("C-OLD")
    expect(cream).to_contain_text("€1.05")  # 3 x 0.35 (1.0499999999999998 in floats), two decimals
    expect(cream).to_contain_text("120 days" if locale == "en" else "120天")
    expect(cream).to_contain_text("never shipped" if locale == "en" else "从未出库")
    expect(juice).to_contain_text("€6.00")  # 5 x 1.2
    expect(juice).to_contain_text("100 days" if locale == "en" else "100天")
    expect(juice).to_contain_text("150 days" if locale == "en" else "150天")
    summary = page.locator("#deadstock-summary")
    expect(summary).to_contain_text("€7.05")
    expect(page.locator("#content")).to_contain_text(
        "Received at least 90 days ago and nothing shipped for 90 days."
        if locale == "en"
        else "入库至少 90天，且 90天 内无出库。"
    )
    expect(page.locator("nav a[data-view=deadstock]")).to_have_text(
        "Dead stock" if locale == "en" else "呆滞库存"
    )
    finish(page, f"view-deadstock-{locale}-{size}")
    # The alerts it raised: one per lot, their value in days without outbound.
    page.click("nav a[data-view=alerts]")
    page.fill("#alert-kind", "dead_stock")
    page.click(".toolbar button[type=submit]")
    rows = page.locator("#alert-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#alert-table")).to_contain_text("120 days" if locale == "en" else "120天")
    assert page.js_errors == []
