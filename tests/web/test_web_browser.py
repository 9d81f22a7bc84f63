"""The operator page in a real headless Chromium (Debian's, driven by Playwright) against a real
cloud (uvicorn on a free port, SQLite) fed through the ordinary edge batch endpoint.

Screenshots go to test-artifacts/ (gitignored). Features other helpers add (alert actions,
proposals, lots) are exercised when the server's OpenAPI lists them, and must otherwise show
"not available" rather than break the page.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_support import PASSWORD, make_settings

from cloud.admin import create_edge, create_user
from cloud.main import build_server
from cloud.web.sessions import set_password
from devices.epc import encode_sgtin96

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing (pip install -e .[test])")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EPC = encode_sgtin96("0614141", "812345", 4242)  # GTIN 80614141123458, serial 4242
XSS_NAME = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>Milk'
PageFactory = Callable[..., Any]
TIMEOUT_MS = 20_000  # generous: two cores shared with other test runs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (scripts/test.sh installs it)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveCloud:
    """uvicorn in a thread of its own, plus provisioning and an edge that posts batches."""

    def __init__(self, db_url: str) -> None:
        self.port = free_port()
        self.db_url = db_url
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = build_server(make_settings(db_url, port=self.port), log_level="warning")
        self.thread = threading.Thread(target=self.server.run, name="cloud", daemon=True)
        self.seq = 0
        self.edge_token = ""
        self.admin_token = ""
        self.operator_token = ""

    def start(self) -> LiveCloud:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "cloud did not start"
            assert self.thread.is_alive(), "cloud thread died"
            time.sleep(0.05)
        _, self.edge_token = create_edge(self.db_url, "site-1", "edge-1")
        create_user(self.db_url, "vera", "viewer")
        self.operator_token = create_user(self.db_url, "olga", "operator")
        self.admin_token = create_user(self.db_url, "ada", "admin")
        for name in ("vera", "olga"):
            set_password(self.db_url, name, PASSWORD)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def post_events(self, events: list[dict[str, Any]]) -> None:
        numbered = []
        for event in events:
            self.seq += 1
            numbered.append({"seq": self.seq, "event": event})
        body = {"v": 1, "edge_id": "edge-1", "created_at": now_iso(), "events": numbered}
        response = httpx.post(
            f"{self.url}/api/v1/edges/edge-1/batches",
            content=json.dumps(body),
            headers={"Authorization": f"Bearer {self.edge_token}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["acked_through"] == self.seq

    def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )

    def has(self, method: str, path: str) -> bool:
        """Whether the running server offers this endpoint (other helpers add some of them)."""
        paths = httpx.get(f"{self.url}/openapi.json", timeout=30).json()["paths"]
        return method.lower() in paths.get(path, {})


def now_iso(offset_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def reading(offset_s: float, value: float) -> dict[str, Any]:
    return {
        "kind": "sensor_reading",
        "sensor_id": "probe-1",
        "quantity": "temperature",
        "value": value,
        "unit": "degC",
        "time": now_iso(offset_s),
        "zone": "cold-1",
        "flags": [],
    }


def move(epc: str, frm: str | None, to: str | None, when: str) -> dict[str, Any]:
    return {"kind": "stock_movement", "epc": epc, "from_location": frm, "to_location": to, "at": when}


def health(connected: bool) -> dict[str, Any]:
    return {
        "kind": "device_health",
        "device_id": "uhf-1",
        "connected": connected,
        "frames_ok": 120,
        "frames_bad": 2,
        "reconnects": 0,
        "at": now_iso(),
    }


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    db_file = tmp_path_factory.mktemp("web-browser") / "cloud.db"
    live = LiveCloud(f"sqlite+aiosqlite:///{db_file}").start()
    # Master data: a product whose name is markup, and the item tagged with EPC.
    assert live.admin("PUT", "/api/v1/products/SKU-X", {"sku": "SKU-X", "name": XSS_NAME}).status_code == 200
    expiry = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    lot = {"sku": "SKU-X", "lot_code": "LOT-1", "expiry": expiry}
    assert live.admin("PUT", "/api/v1/lots/SKU-X/LOT-1", lot).status_code == 200
    item = {"epc": EPC, "sku": "SKU-X", "lot_code": "LOT-1"}
    assert live.admin("PUT", f"/api/v1/items/{EPC}", item).status_code == 200
    # The item enters the cold room (a location named like the sensor's zone), readings are normal.
    live.post_events(
        [
            move(EPC, None, "dock", now_iso(-600)),
            move(EPC, "dock", "cold-1", now_iso(-500)),
            health(True),
            *(reading(-480 + 30 * i, 4.0 + 0.1 * i) for i in range(10)),
        ]
    )
    yield live
    live.stop()


def make_proposal(cloud: LiveCloud) -> int:
    """Restocking data over the API (product, items, supplier, 40 days of movements), then a run."""
    product = {"sku": "P1", "name": "Yoghurt 500 g"}
    assert cloud.admin("PUT", "/api/v1/products/P1", product).status_code == 200
    tags = [f"3034{1:04X}{i:016X}" for i in range(70)]
    items = [{"epc": tag, "sku": "P1"} for tag in tags]
    assert cloud.admin("POST", "/api/v1/master/items/import", items).status_code == 200
    for kind, text in (
        ("suppliers", "supplier_id,name,lead_time_days,lead_time_std_days,moq\nACME,Acme,7,0,0\n"),
        ("product_suppliers", "sku,supplier_id,pack_size,unit_cost,preferred\nP1,ACME,12,10.0,true\n"),
    ):
        response = httpx.post(
            f"{cloud.url}/api/v1/replenish/{kind}/import",
            content=text,
            headers={"Authorization": f"Bearer {cloud.admin_token}", "Content-Type": "text/csv"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    received = (today - timedelta(days=40)).isoformat()
    events = [move(tag, None, "backroom", received) for tag in tags]
    for n, tag in enumerate(tags[:60]):  # two a day shipped over the last 30 days
        when = (today - timedelta(days=30 - n // 2, minutes=-n % 2)).isoformat()
        events.append(move(tag, "backroom", None, when))
    cloud.post_events(events)
    run = cloud.admin("POST", "/api/v1/proposals/run", {"site": "site-1"})
    assert run.status_code == 200, run.text
    made = [p for site in run.json()["sites"] for p in site["proposals"]]
    assert made, run.json()
    return int(made[0]["id"])


@pytest.fixture(scope="module")
def browser(cloud: LiveCloud) -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Any, cloud: LiveCloud) -> Iterator[PageFactory]:
    contexts: list[Any] = []

    def make(locale: str = "en-US", viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(
            base_url=cloud.url, locale=locale, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        return page

    yield make
    for context in contexts:
        context.close()


def login(page: Any, user: str) -> None:
    page.goto("/ui/")
    page.wait_for_selector("#login-user")
    page.fill("#login-user", user)
    page.fill("#login-password", PASSWORD)
    page.click("#login-password-form button[type=submit]")
    page.wait_for_selector("#user-badge")


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"), full_page=True)


def test_operator_sees_alert_live_acknowledges_and_traces(cloud: LiveCloud, new_page: PageFactory) -> None:
    page = new_page()
    login(page, "olga")
    expect = sync_api.expect
    expect(page.locator("#user-badge")).to_contain_text("olga")
    expect(page.locator("#items-total")).to_have_text("1")
    expect(page.locator("#edges")).to_contain_text("uhf-1")
    expect(page.locator("#alerts-open")).to_have_text("0")
    # The cold room warms up: the alert appears without a reload (polling).
    marker = page.evaluate("() => { window.__sameDocument = 42; return window.__sameDocument; }")
    cloud.post_events([reading(-60, 9.4), reading(-30, 10.2), reading(0, 9.8)])
    expect(page.locator("#alerts-open")).to_have_text("1")
    assert page.evaluate("() => window.__sameDocument") == marker  # no navigation happened
    shot(page, "overview")

    # Alerts list: acknowledge with a required comment.
    page.click("nav a[data-view=alerts]")
    row = page.locator("#alert-table tbody tr").first
    expect(row).to_contain_text("cold-1")
    if cloud.has("post", "/api/v1/alerts/{alert_id}/acknowledge") or cloud.has(
        "post", "/api/v1/alerts/{id}/acknowledge"
    ):
        row.locator("button.ack").click()
        page.click("#prompt-ok")  # empty comment: refused by the page
        expect(page.locator("#prompt-error")).not_to_have_text("")
        page.fill("#prompt-text", "Door was left open, closed it")
        page.click("#prompt-ok")
        page.select_option("#alert-status", "all")
        page.click(".toolbar button[type=submit]")
        expect(page.locator("#alert-table")).to_contain_text("Acknowledged")
    else:
        row.locator("button.ack").click()
        page.fill("#prompt-text", "Door was left open")
        page.click("#prompt-ok")
        expect(page.locator("#flash")).to_contain_text("Error")  # the endpoint is not there yet

    # The excursion's chart with its limit.
    page.locator("#alert-table a", has_text="Details").first.click()
    chart = page.locator("#alert-chart")
    expect(chart.locator("polyline.series")).to_have_count(1)
    expect(chart.locator("line.limit.max")).to_have_count(1)
    assert chart.locator("circle.breach").count() >= 2
    shot(page, "alert-chart")

    # Trace by GTIN + serial: the product name (markup) renders as text and runs nothing.
    page.click("nav a[data-view=trace]")
    page.fill("#trace-gtin", "80614141123458")
    page.fill("#trace-serial", "4242")
    page.click("#trace-gtin-form button[type=submit]")
    expect(page.locator("#trace-epc-value")).to_have_text(EPC)
    expect(page.locator("#trace-product")).to_have_text(f"{XSS_NAME} (SKU-X)")
    expect(page.locator("#trace-location")).to_contain_text("cold-1")
    expect(page.locator("#trace-path")).to_contain_text("dock")
    expect(page.locator("#trace-temps")).to_contain_text("10.2")  # the warmest reading of the stay
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#content img, #content script").count() == 0
    shot(page, "trace")
    assert page.js_errors == []


def test_viewer_is_read_only_and_refused_by_the_server(cloud: LiveCloud, new_page: PageFactory) -> None:
    # A passage the portal could not give a direction (a reader was down): the stocktake page lists
    # it, no stock moved (issue 14 item 5).
    unknown = "3034257BF46DB64000000777"
    cloud.post_events(
        [
            {
                "kind": "portal_passage",
                "epc": unknown,
                "portal": "dock-1",
                "direction": "unknown",
                "unknown_reason": "reader_down",
                "at": now_iso(-60),
                "inside_location": "backroom",
            }
        ]
    )
    page = new_page()
    login(page, "vera")
    expect = sync_api.expect
    expect(page.locator("#viewer-note")).to_be_visible()
    page.click("nav a[data-view=stocktake]")
    page.wait_for_selector("#content section")
    assert page.locator("#run-stocktake").count() == 0  # the UI hides actions
    expect(page.locator("#unknown-passages")).to_contain_text(unknown)
    expect(page.locator("#unknown-passages")).to_contain_text("a portal reader was down")
    page.click("nav a[data-view=alerts]")
    page.select_option("#alert-status", "all")
    page.click(".toolbar button[type=submit]")
    expect(page.locator("#alert-table tbody tr").first).to_be_visible()
    assert page.locator("#alert-table button").count() == 0
    # The server refuses the viewer even with a valid session and CSRF token.
    status = page.evaluate(
        """async () => {
            const session = await (await fetch('/web/session')).json();
            const r = await fetch('/api/v1/stocktakes/run',
                {method: 'POST', headers: {'X-CSRF-Token': session.csrf}});
            return [r.status, (await r.json()).code];
        }"""
    )
    assert status == [403, "forbidden"]
    # And a forged request without the CSRF token is refused before the role is even considered.
    forged = page.evaluate("async () => (await fetch('/api/v1/stocktakes/run', {method: 'POST'})).status")
    assert forged == 403
    # The cookie is HttpOnly: page scripts cannot read it.
    assert "shelfsense_session" not in page.evaluate("() => document.cookie")
    shot(page, "viewer-alerts")
    assert page.js_errors == []


def test_proposals_lots_and_chinese_on_a_tablet(cloud: LiveCloud, new_page: PageFactory) -> None:
    page = new_page(locale="zh-CN", viewport={"width": 820, "height": 1180})
    page.goto("/ui/")
    expect = sync_api.expect
    # The browser's language picks Simplified Chinese by default.
    expect(page.locator("#login-password-form h2")).to_have_text("使用密码")
    login(page, "olga")
    expect(page.locator("nav a[data-view=alerts]")).to_have_text("告警")
    expect(page.locator("#content h2").first).to_have_text("在库物品")
    proposals = cloud.has("get", "/api/v1/proposals")
    if proposals:
        proposal_id = make_proposal(cloud)
    page.click("nav a[data-view=proposals]")
    page.wait_for_selector("#content section")
    if proposals:
        card = page.locator(f"article[data-proposal='{proposal_id}']")
        expect(card.locator(".reasoning")).not_to_be_empty()
        card.locator("button.approve").click()
        page.fill("#prompt-text", "同意补货")
        page.click("#prompt-ok")
        expect(card).to_contain_text("已批准")  # the status, translated
        expect(card.locator("button.approve")).to_have_count(0)
        expect(page.locator("#kpis")).not_to_be_empty()
    else:
        expect(page.locator("#content section").first).to_contain_text("此服务器暂不支持该功能")
    shot(page, "proposals-zh-tablet")
    # Switch to English and back, without reloading.
    page.select_option("#lang-select", "en")
    expect(page.locator("nav a[data-view=alerts]")).to_have_text("Alerts")
    page.select_option("#lang-select", "zh-CN")
    page.click("nav a[data-view=lots]")
    expect(page.locator("nav a[data-view=lots]")).to_have_text("批次")
    expect(page.locator("#lot-table")).to_contain_text("LOT-1")
    # The report downloads with the session cookie (no token in the link).
    href = page.locator("#lot-table a[data-format=csv]").first.get_attribute("href")
    assert href is not None and "token" not in href
    fetch_text = "async (u) => { const r = await fetch(u); return [r.status, await r.text()] }"
    report = page.evaluate(fetch_text, href)
    assert report[0] == 200 and "LOT-1" in report[1]
    shot(page, "lots-zh-tablet")
    page.click("nav a[data-view=overview]")
    expect(page.locator("#edges")).to_contain_text("已连接")
    # Tablet width: nothing wider than the screen except inside scrollable tables.
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    shot(page, "overview-zh-tablet")
    assert page.js_errors == []


def test_logout_returns_to_login_and_ends_the_session(cloud: LiveCloud, new_page: PageFactory) -> None:
    page = new_page()
    login(page, "olga")
    page.click("#logout")
    page.wait_for_selector("#login-user")
    status = page.evaluate("async () => (await fetch('/api/v1/summary')).status")
    assert status == 401
    page.reload()
    page.wait_for_selector("#login-user")  # no session survives a reload


# A cloud answering every API call after 3.5 s (longer than the 3 s poll period), and a tab whose
# visibility the test controls.
SLOW_CLOUD = """
(() => {
  window.__hidden = false;
  window.__delay = 3500;
  Object.defineProperty(document, "hidden", { get: () => window.__hidden, configurable: true });
  const real = window.fetch.bind(window);
  window.__inflight = {};
  window.__count = {};
  window.__maxInflight = 0;
  window.fetch = async (url, options) => {
    const path = String(url);
    if (!path.startsWith("/api/")) return real(url, options);
    window.__count[path] = (window.__count[path] || 0) + 1;
    window.__inflight[path] = (window.__inflight[path] || 0) + 1;
    window.__maxInflight = Math.max(window.__maxInflight, window.__inflight[path]);
    try {
      await new Promise((resolve) => setTimeout(resolve, window.__delay));
      return await real(url, options);
    } finally {
      window.__inflight[path] -= 1;
    }
  };
})();
"""
MOST_FETCHED = "() => Math.max(0, ...Object.values(window.__count))"
IN_FLIGHT = "() => Object.values(window.__inflight).reduce((a, b) => a + b, 0)"


def _until(page: Any, script: str, predicate: Callable[[Any], bool], timeout_s: float = 60) -> Any:
    """Poll ``page.evaluate(script)`` until ``predicate`` holds (the page's CSP forbids the eval that
    ``wait_for_function`` needs)."""
    deadline = time.monotonic() + timeout_s
    while not predicate(value := page.evaluate(script)):
        assert time.monotonic() < deadline, f"{script} stayed {value!r}"
        page.wait_for_timeout(100)
    return value


def test_page_polls_one_at_a_time_backs_off_and_pauses_when_hidden(
    cloud: LiveCloud, new_page: PageFactory
) -> None:
    page = new_page()
    page.context.add_init_script(SLOW_CLOUD)
    login(page, "olga")
    _until(page, MOST_FETCHED, lambda n: n >= 2)  # the first load and at least one poll
    assert page.evaluate("window.__maxInflight") == 1  # never a poll on top of a running request
    page.evaluate("window.__delay = 0")
    page.evaluate("window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))")
    _until(page, IN_FLIGHT, lambda n: n == 0)
    hidden_count = page.evaluate(MOST_FETCHED)
    page.wait_for_timeout(7000)  # two poll periods (a negative check needs a span of time)
    assert page.evaluate(MOST_FETCHED) == hidden_count  # nothing asked while hidden
    page.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    _until(page, MOST_FETCHED, lambda n: n > hidden_count)  # back in view: polled at once
    assert page.js_errors == []
