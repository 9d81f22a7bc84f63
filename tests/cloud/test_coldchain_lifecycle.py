"""Alert lifecycle over the API (SQLite and PostgreSQL): open -> acknowledged -> resolved, roles."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Cloud, alarm, batch, reading

from cloud.admin import create_user_async


@pytest.fixture
async def operator(cloud: Cloud) -> str:
    return await create_user_async(cloud.engine, "otto", "operator")


async def act(cloud: Cloud, token: str, alert_id: int, action: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    return await cloud.client.post(f"/api/v1/alerts/{alert_id}/{action}", json=body, headers=headers)


async def only_alert(cloud: Cloud, status: str = "all") -> dict[str, Any]:
    [alert] = (await cloud.get_ok("/api/v1/alerts", status=status))["items"]
    return alert


async def test_acknowledged_alert_stays_active_until_readings_recover(cloud: Cloud, operator: str) -> None:
    await cloud.post(batch("edge-1", [(1, reading(0, 9.5))]))
    alert = await only_alert(cloud, "open")
    response = await act(cloud, operator, alert["id"], "acknowledge", {"comment": "door left open, closing"})
    assert response.status_code == 200, response.text
    acked = response.json()
    assert (acked["status"], acked["acknowledged_by"], acked["ack_comment"]) == (
        "acknowledged",
        "otto",
        "door left open, closing",
    )
    assert acked["acknowledged_at"] is not None
    assert (await cloud.get_ok("/api/v1/alerts", status="open"))["total"] == 0
    assert (await cloud.get_ok("/api/v1/alerts", status="acknowledged"))["total"] == 1
    # The summary still counts it: an acknowledged excursion is not over.
    assert (await cloud.get_ok("/api/v1/summary"))["alerts_open"] == 1

    # Still hot: the same alert is fed (one alert per excursion), not resolved, not duplicated.
    await cloud.post(batch("edge-1", [(2, reading(60, 11.0)), (3, alarm(61, "raised", 11.2))]))
    alert = await only_alert(cloud)
    assert (alert["status"], alert["peak_value"], alert["source"]) == ("acknowledged", 11.2, "both")
    # Inside but not by the hysteresis (8.0 - 0.5): still acknowledged.
    await cloud.post(batch("edge-1", [(4, reading(120, 7.8))]))
    assert (await only_alert(cloud))["status"] == "acknowledged"
    await cloud.post(batch("edge-1", [(5, reading(180, 6.0))]))
    alert = await only_alert(cloud)
    assert alert["status"] == "resolved"
    assert alert["resolved_by"] is None  # the readings closed it
    assert alert["resolve_reason"] == "readings back inside the limits"
    assert alert["resolved_at"].startswith("2025-01-01T12:03:00")


async def test_operator_closes_with_a_reason_and_a_new_excursion_opens_a_new_alert(
    cloud: Cloud, operator: str
) -> None:
    await cloud.post(batch("edge-1", [(1, reading(0, 1.0))]))  # below min 2.0
    alert = await only_alert(cloud, "open")
    assert alert["rule"] == "min_temperature"
    missing = await act(cloud, operator, alert["id"], "resolve", {})
    assert missing.status_code == 422
    blank = await act(cloud, operator, alert["id"], "resolve", {"reason": "   "})
    assert blank.status_code == 422
    response = await act(cloud, operator, alert["id"], "resolve", {"reason": "probe fell off the shelf"})
    assert response.status_code == 200, response.text
    closed = response.json()
    assert (closed["status"], closed["resolved_by"], closed["resolve_reason"]) == (
        "resolved",
        "otto",
        "probe fell off the shelf",
    )
    again = await act(cloud, operator, alert["id"], "resolve", {"reason": "twice"})
    assert again.status_code == 409
    late_ack = await act(cloud, operator, alert["id"], "acknowledge", {"comment": "too late"})
    assert late_ack.status_code == 409
    # The excursion goes on, but the operator closed it: no new alert until it recovers and
    # breaches again.
    await cloud.post(batch("edge-1", [(2, reading(60, 0.8))]))
    assert (await cloud.get_ok("/api/v1/alerts", status="all"))["total"] == 1
    await cloud.post(batch("edge-1", [(3, reading(120, 4.0)), (4, reading(180, 1.2))]))
    assert (await cloud.get_ok("/api/v1/alerts", status="open"))["total"] == 1
    assert (await cloud.get_ok("/api/v1/alerts", status="all"))["total"] == 2


async def test_comment_required_roles_and_unknown_alert(cloud: Cloud, operator: str) -> None:
    await cloud.post(batch("edge-1", [(1, reading(0, 9.5))]))
    alert = await only_alert(cloud)
    for body in ({}, {"comment": ""}, {"comment": " \t"}):
        response = await act(cloud, operator, alert["id"], "acknowledge", body)
        assert response.status_code == 422, body
    for action, body in (("acknowledge", {"comment": "x"}), ("resolve", {"reason": "x"})):
        response = await act(cloud, cloud.viewer, alert["id"], action, body)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    unauthenticated = await cloud.client.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge", json={"comment": "x"}
    )
    assert unauthenticated.status_code == 401
    assert (await act(cloud, operator, 999_999, "acknowledge", {"comment": "x"})).status_code == 404
    assert (await cloud.get("/api/v1/alerts/999999")).status_code == 404
    # admin may act too; a second acknowledge is a conflict
    assert (
        await act(cloud, cloud.admin, alert["id"], "acknowledge", {"comment": "on it"})
    ).status_code == 200
    assert (await act(cloud, operator, alert["id"], "acknowledge", {"comment": "me too"})).status_code == 409
    assert (await only_alert(cloud))["acknowledged_by"] == "ada"


async def test_detail_has_readings_window_limits_and_events(cloud: Cloud) -> None:
    events = [(s, reading(s * 60, v)) for s, v in enumerate([5.0, 6.0, 9.0, 10.0, 7.0, 5.0], start=1)]
    events.append((7, reading(400, 70.0, quantity="humidity")))  # another quantity: not in the chart
    await cloud.post(batch("edge-1", events))
    alert = await only_alert(cloud)
    detail = await cloud.get_ok(f"/api/v1/alerts/{alert['id']}")
    assert detail["status"] == "resolved"
    assert detail["limits"] == {
        "min_temp_c": 2.0,
        "max_temp_c": 8.0,
        "max_humidity": 90.0,
        "hysteresis": 0.5,
        "source": "zone",
    }
    assert [r["value"] for r in detail["readings"]] == [5.0, 6.0, 9.0, 10.0, 7.0, 5.0]
    assert {r["quantity"] for r in detail["readings"]} == {"temperature"}
    assert [(e["rule"], e["state"]) for e in detail["events"]] == [
        ("max_temperature", "raised"),
        ("max_temperature", "cleared"),
    ]
    assert detail["events"][1]["peak"] == 10.0
    assert detail["window"]["start"] < detail["first_breach_at"]
    filtered = await cloud.get_ok("/api/v1/alerts", status="all", kind="single_event", zone="cold-1")
    assert filtered["total"] == 1
    assert (await cloud.get_ok("/api/v1/alerts", status="all", kind="gap"))["total"] == 0
