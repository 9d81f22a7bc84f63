"""The operator page's What-if view in headless Chromium: edit a scenario, run it, read the table and
the chart, download the PNG; a viewer cannot run one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_web_browser import CHROMIUM, LiveCloud, PageFactory, browser, cloud, login, new_page, shot

__all__ = ["browser", "cloud", "new_page"]  # module-scoped fixtures, shared with this module

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing (pip install -e .[test])")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (scripts/test.sh installs it)"),
]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "whatif" / "supplier_stop.toml"


def test_operator_runs_a_scenario_and_sees_table_and_chart(cloud: LiveCloud, new_page: PageFactory) -> None:
    page = new_page()
    login(page, "olga")
    page.click("nav a[data-view=whatif]")
    expect = sync_api.expect
    expect(page.locator("#whatif-text")).to_have_value(re.compile(r"site_id = \"site-1\""))  # the template
    scenario = EXAMPLE.read_text().replace("runs = 200", "runs = 30")
    page.fill("#whatif-text", scenario)
    page.click("#whatif-run")
    table = page.locator("#whatif-table")
    expect(table).to_contain_text("acme-stop")
    expect(table.locator("tbody tr")).to_have_count(6)  # 2 rows (baseline, acme-stop) x 3 policies
    # Two panels, one line per row each; baseline dashed.
    expect(page.locator("#whatif-chart svg polyline")).to_have_count(12)
    dashed = page.locator("#whatif-chart polyline[data-row='baseline/current']").first
    assert dashed.evaluate("(n) => n.style.strokeDasharray") != ""
    with page.expect_download() as download:
        page.click("#whatif-png")
    path = download.value.path()
    assert path is not None and Path(path).read_bytes().startswith(b"\x89PNG")
    # A broken scenario shows the server's reason, and the page keeps working.
    page.fill("#whatif-text", "name = ")
    page.click("#whatif-run")
    expect(page.locator("#whatif-error")).to_contain_text("TOML")
    shot(page, "whatif")
    assert page.js_errors == []


def test_viewer_cannot_run_a_simulation(cloud: LiveCloud, new_page: PageFactory) -> None:
    page = new_page()
    login(page, "vera")
    page.click("nav a[data-view=whatif]")
    sync_api.expect(page.locator("#content")).to_contain_text("operator role")
    sync_api.expect(page.locator("#whatif-run")).to_have_count(0)
