"""Proposals over HTTP: listing, multi-level approvals, rejection, exports (CSV/JSON and signed webhook),
KPIs and EPCIS 2.0 events."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from replenish_fixtures import (
    COST,
    SITE,
    TODAY,
    App,
    Ledger,
    at,
    epc,
    history,
    master_data,
    replenish_settings,
    running_app,
)
from sqlalchemy import select

from cloud.ingest.projections import insert_history
from cloud.notify.webhooks import WebhookChannel, verify_webhook
from cloud.replenish import export as replenish_export
from cloud.replenish import masterdata as rmd
from cloud.replenish import tables as rt
from cloud.replenish.epcis import CONTEXT
from shelfsense.contract import SensorReading, SequencedEvent

SECRET = "s3cret-for-tests"


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    async for a in running_app(replenish_settings(db_url)):
        await master_data(a.engine)
        await history(a.engine)
        yield a


async def _proposal(app: App) -> dict[str, Any]:
    response = await app.post("ada", "/api/v1/proposals/run", {"site": SITE})
    assert response.status_code == 200, response.text
    (made,) = response.json()["sites"][0]["proposals"]
    return dict(made)


async def test_list_and_multi_level_approval(app: App) -> None:
    made = await _proposal(app)
    assert made["amount"] == made["quantity"] * COST and made["amount"] > 100  # above the test threshold
    assert made["approvals_required"] == [[1, "operator"], [2, "finance"]]
    listing = (await app.get("vera", "/api/v1/proposals", status="open", site=SITE)).json()
    assert listing["total"] == 1 and listing["items"][0]["reasoning"]["safety_stock"] >= 0
    pid = made["id"]

    assert (await app.post("vera", f"/api/v1/proposals/{pid}/approve", {"comment": "x"})).status_code == 403
    first = await app.post("oscar", f"/api/v1/proposals/{pid}/approve", {"comment": "needed"})
    assert (
        first.status_code == 200 and first.json()["status"] == "open" and first.json()["approved_level"] == 1
    )
    # Level 2 needs the finance approver: another operator cannot fill it.
    denied = await app.post("olga", f"/api/v1/proposals/{pid}/approve", {"comment": "me too"})
    assert denied.status_code == 403 and "finance" in denied.json()["detail"]
    done = await app.post("fiona", f"/api/v1/proposals/{pid}/approve", {"comment": "budget ok"})
    body = done.json()
    assert body["status"] == "approved"
    assert [(a["level"], a["role"], a["user_name"], a["comment"]) for a in body["approvals"]] == [
        (1, "operator", "oscar", "needed"),
        (2, "finance", "fiona", "budget ok"),
    ]
    again = await app.post("fiona", f"/api/v1/proposals/{pid}/approve", {"comment": ""})
    assert again.status_code == 409

    exported = await app.get("ada", "/api/v1/proposals/export", format="csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["id"], r["po_number"], r["sku"]) for r in rows] == [(str(pid), f"SS-{pid}", "P1")]
    as_json = (await app.get("ada", "/api/v1/proposals/export", format="json")).json()
    assert as_json["proposals"][0]["reasoning"]["lead_time_days"] == 7
    assert (await app.get("vera", "/api/v1/proposals/export")).status_code == 403


async def test_four_eyes_and_reject(app: App) -> None:
    made = await _proposal(app)
    pid = made["id"]
    assert (await app.post("fiona", f"/api/v1/proposals/{pid}/approve", {"comment": "1"})).status_code == 200
    same_person = await app.post("fiona", f"/api/v1/proposals/{pid}/approve", {"comment": "2"})
    assert same_person.status_code == 403 and "four eyes" in same_person.json()["detail"]
    rejected = await app.post("ada", f"/api/v1/proposals/{pid}/reject", {"comment": "supplier on hold"})
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["approvals"][-1]["comment"] == "supplier on hold"
    assert (await app.post("ada", "/api/v1/proposals/999999/approve", {"comment": ""})).status_code == 404
    # A rejected proposal no longer suppresses: the next run proposes the need again.
    again = await _proposal(app)
    assert again["id"] != pid and again["need_key"] == made["need_key"]


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/erp"


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    r = _Recorder()
    yield r
    r.server.shutdown()
    r.server.server_close()


async def test_signed_webhook_export_turns_purchase_into_open_order(app: App, recorder: _Recorder) -> None:
    made = await _proposal(app)
    pid = made["id"]
    for user in ("oscar", "fiona"):
        await app.post(user, f"/api/v1/proposals/{pid}/approve", {"comment": "ok"})
    channel = WebhookChannel(recorder.url, SECRET)
    try:
        assert await replenish_export.export_approved(app.engine, channel) == (1, 0)
        assert await replenish_export.export_approved(app.engine, channel) == (
            0,
            0,
        )  # nothing left, no resend
    finally:
        await channel.aclose()
    ((headers, body),) = recorder.requests
    assert verify_webhook(SECRET, headers["X-ShelfSense-Timestamp"], body, headers["X-ShelfSense-Signature"])
    payload = json.loads(body)
    assert payload["type"] == "replenishment_proposal" and payload["delivery_id"] == f"proposal-{pid}"
    assert (
        payload["proposal"]["po_number"] == f"SS-{pid}"
        and payload["proposal"]["quantity"] == made["quantity"]
    )
    detail = (await app.get("vera", f"/api/v1/proposals/{pid}")).json()
    assert detail["status"] == "exported"
    async with app.engine.connect() as conn:
        po = (await conn.execute(select(rt.purchase_orders))).mappings().one()
    assert (po["po_number"], po["status"], po["source"]) == (f"SS-{pid}", "open", "proposal")
    # The exported order is now on order: the next run proposes nothing for that need.
    rerun = (await app.post("ada", "/api/v1/proposals/run", {"site": SITE})).json()
    assert rerun["sites"][0]["proposals"] == []


async def test_import_endpoint_reports_rows(app: App) -> None:
    bad = "supplier_id,lead_time_days,order_weekdays\nB1,-2,0\nB2,3,9\n"
    response = await app.client.post(
        "/api/v1/replenish/suppliers/import",
        content=bad,
        headers={**app.auth("ada"), "Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    assert {(e["row"], e["column"]) for e in response.json()["errors"]} == {
        (1, "lead_time_days"),
        (2, "order_weekdays"),
    }
    ok = await app.client.post(
        "/api/v1/replenish/suppliers/import",
        content=json.dumps([{"supplier_id": "B1", "lead_time_days": 2, "order_weekdays": [0, 3]}]),
        headers={**app.auth("ada"), "Content-Type": "application/json"},
    )
    assert ok.json() == {"imported": 1}


async def test_kpis(app: App) -> None:
    """history(): 70 received 40 days ago, 2 shipped per day over the last 30 days -> 10 on hand."""
    await rmd.import_text(
        app.engine,
        "purchase_orders",
        "po_number,supplier_id,site_id,location_id,sku,quantity,status,expected_date,received_date\n"
        f"PO-A,ACME,{SITE},backroom,P1,5,received,{TODAY - timedelta(days=5)},{TODAY - timedelta(days=6)}\n"
        f"PO-B,ACME,{SITE},backroom,P1,5,received,{TODAY - timedelta(days=5)},{TODAY - timedelta(days=2)}\n",
        "csv",
    )
    since, until = TODAY - timedelta(days=30), TODAY
    body = (await app.get("vera", "/api/v1/kpis", site=SITE, product="P1", since=since, until=until)).json()
    (row,) = body["items"]
    assert row["location_id"] == "backroom" and row["outbound_units"] == 60
    assert row["cogs"] == 60 * COST
    # End of day k (k = 0..29) holds 70 - 2(k+1) units: mean 39.
    assert row["average_inventory_units"] == pytest.approx(39.0)
    assert row["turnover"] == pytest.approx(600 / 390)
    assert row["closing_units"] == 10 and row["days_of_cover"] == pytest.approx(5.0)
    assert row["stock_out_days"] == 0 and row["fill_rate"] == 1.0
    assert body["on_time_delivery"] == {"received_orders": 2, "on_time_orders": 1, "rate": 0.5}
    assert (await app.get("vera", "/api/v1/kpis", since=until, until=since)).status_code == 422


async def test_kpis_count_stock_out_days(app: App) -> None:
    ledger = Ledger(app.engine, seq=10_000)
    # Sell the last 10 three days ago: the history's own sales of the next two days empty the
    # backroom by the end of yesterday (one stock-out day).
    for i in range(60, 70):
        ledger.move(epc(1, i), "backroom", None, at(TODAY - timedelta(days=3), 15))
    await ledger.flush()
    body = (await app.get("vera", "/api/v1/kpis", product="P1", location="backroom",
                          since=TODAY - timedelta(days=10), until=TODAY)).json()  # fmt: skip
    (row,) = body["items"]
    assert row["stock_out_days"] == 1 and row["closing_units"] == 0
    assert 0 < row["fill_rate"] < 1


_OFFSET = re.compile(r"^([+]|[-])((0[0-9]|1[0-3]):([0-5][0-9])|14:00)$")
_BIZ_STEPS = {"receiving", "shipping", "cycle_counting", "storing", "stock_taking", "sensor_reporting"}
_DISPOSITIONS = {"active", "in_progress", "in_transit", "unknown"}


def _check_event(event: dict[str, Any]) -> None:
    """Required fields and value sets of an ObjectEvent per the EPCIS 2.0 JSON schema."""
    assert event["type"] == "ObjectEvent" and event["action"] in ("OBSERVE", "ADD", "DELETE")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", event["eventTime"])
    assert _OFFSET.match(event["eventTimeZoneOffset"])
    assert event["eventID"].startswith("urn:uuid:")
    # Sensor-only events (bizStep sensor_reporting, CBV 2.0) carry no EPCs.
    assert event["epcList"] or event["bizStep"] == "sensor_reporting"
    assert all(re.match(r"^urn:[a-z]+:", u) for u in event["epcList"])
    assert event["bizStep"] in _BIZ_STEPS and event.get("disposition", "active") in _DISPOSITIONS
    for key in ("readPoint", "bizLocation"):
        if key in event:
            assert set(event[key]) == {"id"} and event[key]["id"].startswith("urn:")
    allowed = {"type", "eventID", "eventTime", "eventTimeZoneOffset", "epcList", "action", "bizStep",
               "disposition", "readPoint", "bizLocation", "sensorElementList"}  # fmt: skip
    assert set(event) <= allowed
    for element in event.get("sensorElementList", []):
        assert element["sensorReport"]
        for report in element["sensorReport"]:
            assert report["type"] in ("Temperature", "RelativeHumidity") and isinstance(
                report["value"], float
            )


async def test_epcis_events(app: App) -> None:
    ledger = Ledger(app.engine, seq=20_000)
    when = at(TODAY - timedelta(days=1), 9)
    ledger.move(epc(2, 1), None, "cold-1", when)
    await ledger.flush()
    from cloud.core import db

    reading = SensorReading(sensor_id="probe-1", quantity="temperature", value=4.5, unit="degC",
                            time=when - timedelta(minutes=2), zone="cold-1")  # fmt: skip
    async with db.write_transaction(app.engine) as conn:
        await insert_history(conn, SITE, "edge-1", [SequencedEvent(seq=30_000, event=reading)])

    doc = (
        await app.get("vera", "/api/v1/epcis/events", since=(TODAY - timedelta(days=2)).isoformat())
    ).json()
    assert doc["@context"] == [CONTEXT] and doc["type"] == "EPCISQueryDocument"
    results = doc["epcisBody"]["queryResults"]
    assert results["queryName"] == "SimpleEventQuery"
    events = results["resultsBody"]["eventList"]
    for event in events:
        _check_event(event)
    steps = {e["bizStep"] for e in events}
    # the history's sales, the cold-room receipt and the cold room's readings
    assert steps == {"shipping", "receiving", "sensor_reporting"}
    (cold,) = [e for e in events if e["bizStep"] == "receiving"]
    assert cold["disposition"] == "in_progress"
    assert cold["bizLocation"] == {"id": f"urn:shelfsense:loc:{SITE}:cold-1"}
    (element,) = cold["sensorElementList"]
    assert element["sensorReport"][0]["value"] == 4.5 and element["sensorReport"][0]["uom"] == "CEL"
    shipped = [e for e in events if e["bizStep"] == "shipping"]
    assert all("bizLocation" not in e and e["disposition"] == "in_transit" for e in shipped)
    assert len({e["eventID"] for e in events}) == len(events)

    one = (await app.get("vera", "/api/v1/epcis/events", epc=epc(2, 1).lower())).json()
    assert len(one["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 1
    assert (await app.client.get("/api/v1/epcis/events")).status_code == 401
