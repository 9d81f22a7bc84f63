"""Cold-chain alerts from cloud readings and edge local alarms (SQLite and PostgreSQL), plus pure rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from conftest import Cloud, alarm, batch, reading

from cloud.alerts import tables as alerts_db
from cloud.alerts.rules import AlertBook
from cloud.core import db
from shelfsense.config import ZoneLimits
from shelfsense.contract import LocalAlarm, SensorReading


async def alerts(cloud: Cloud, status: str = "all") -> list[dict]:
    return (await cloud.get_ok("/api/v1/alerts", status=status))["items"]


async def test_one_alert_for_many_hot_readings_then_resolved(cloud: Cloud) -> None:
    hot = [(s, reading(s * 10, v)) for s, v in enumerate([9.0, 10.5, 12.0, 9.5], start=1)]
    await cloud.post(batch("edge-1", hot))
    await cloud.post(
        batch("edge-1", [(5, reading(50, 11.0)), (6, reading(60, 7.8))])
    )  # 7.8: inside, not by 0.5
    [alert] = await alerts(cloud, "open")
    assert (alert["rule"], alert["zone"], alert["site_id"], alert["source"]) == (
        "max_temperature",
        "cold-1",
        "site-1",
        "cloud",
    )
    assert alert["peak_value"] == 12.0
    assert alert["last_value"] == 7.8
    assert alert["first_breach_at"].startswith("2025-01-01T12:00:10")
    assert alert["last_breach_at"].startswith("2025-01-01T12:00:50")
    await cloud.post(batch("edge-1", [(7, reading(70, 7.4))]))
    assert await alerts(cloud, "open") == []
    [resolved] = await alerts(cloud, "resolved")
    assert resolved["id"] == alert["id"]
    assert resolved["resolved_at"].startswith("2025-01-01T12:01:10")
    # A new excursion is a new alert.
    await cloud.post(batch("edge-1", [(8, reading(80, 8.6))]))
    assert len(await alerts(cloud, "open")) == 1
    assert len(await alerts(cloud, "all")) == 2
    summary = await cloud.get_ok("/api/v1/summary")
    assert (summary["alerts_open"], summary["alerts_total"]) == (1, 2)


async def test_readings_evaluated_in_time_order_within_a_batch(cloud: Cloud) -> None:
    # Sequence order says "normal then hot" but the times say "hot then recovered".
    await cloud.post(batch("edge-1", [(1, reading(30, 5.0)), (2, reading(10, 9.0))]))
    [alert] = await alerts(cloud)
    assert alert["status"] == "resolved"


async def test_min_temperature_and_humidity_rules(cloud: Cloud) -> None:
    events = [
        (1, reading(0, 1.0)),
        (2, reading(1, 0.5)),
        (3, reading(2, 95.0, quantity="humidity")),
        (4, reading(3, 2.4)),  # not yet 2.0 + 0.5
        (5, reading(4, 99.0, zone="unlimited-zone")),  # no limits: no alert
        (6, reading(5, 30.0, flags=("out_of_range",))),  # implausible: no alert
    ]
    await cloud.post(batch("edge-1", events))
    open_alerts = {a["rule"]: a for a in await alerts(cloud, "open")}
    assert set(open_alerts) == {"min_temperature", "max_humidity"}
    assert open_alerts["min_temperature"]["peak_value"] == 0.5
    await cloud.post(batch("edge-1", [(7, reading(6, 2.5)), (8, reading(7, 89.5, quantity="humidity"))]))
    assert await alerts(cloud, "open") == []


async def test_local_alarm_merges_into_the_cloud_alert(cloud: Cloud) -> None:
    await cloud.post(batch("edge-1", [(1, reading(10, 9.0)), (2, alarm(12, "raised", 9.3))]))
    [alert] = await alerts(cloud, "open")
    assert alert["source"] == "both"
    assert alert["peak_value"] == 9.3
    # cleared from the edge does not resolve: the cloud readings decide.
    await cloud.post(batch("edge-1", [(3, alarm(20, "cleared", 7.9))]))
    assert len(await alerts(cloud, "open")) == 1
    await cloud.post(batch("edge-1", [(4, reading(30, 7.0))]))
    assert await alerts(cloud, "open") == []


async def test_local_alarm_alone_opens_an_edge_alert(cloud: Cloud) -> None:
    await cloud.post(batch("edge-1", [(1, alarm(5, "raised", 8.4))]))
    [alert] = await alerts(cloud, "open")
    assert (alert["source"], alert["limit"], alert["peak_value"]) == ("edge", 8.0, 8.4)
    await cloud.post(batch("edge-1", [(2, reading(6, 8.9))]))
    [merged] = await alerts(cloud, "open")
    assert (merged["id"], merged["source"], merged["peak_value"]) == (alert["id"], "both", 8.9)


async def test_replayed_hot_readings_do_not_reopen(cloud: Cloud) -> None:
    hot = batch("edge-1", [(1, reading(0, 9.0)), (2, reading(1, 7.0))])
    await cloud.post(hot)
    await cloud.post(hot)
    assert len(await alerts(cloud, "all")) == 1


async def test_concurrent_edges_open_one_alert(cloud: Cloud) -> None:
    async def hot(edge: str) -> int:
        events = [(s, reading(s, 9.0 + s / 10, sensor=f"probe-{edge}")) for s in range(1, 30)]
        return (await cloud.post(batch(edge, events), edge=edge)).status_code

    assert await asyncio.gather(hot("edge-1"), hot("edge-2")) == [200, 200]
    [alert] = await alerts(cloud, "all")
    assert alert["status"] == "open"
    assert alert["peak_value"] == 11.9


def test_cleared_resolves_an_edge_alert_when_the_cloud_has_no_limit() -> None:
    zones = {("site-1", "z"): ZoneLimits(id="z", max_temp_c=8.0)}
    book = AlertBook("site-1", zones, [])
    raised = LocalAlarm(
        zone="z",
        sensor_id="p",
        rule="max_humidity",
        state="raised",
        value=95,
        limit=90,
        at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    book.on_local_alarm(raised)
    book.on_local_alarm(raised.model_copy(update={"state": "cleared", "value": 80.0}))
    [alert], updated = book.changed()
    assert (alert.status, alert.source, updated) == ("resolved", "edge", [])


def test_hysteresis_boundary() -> None:
    zones = {("s", "z"): ZoneLimits(id="z", site_id="s", max_temp_c=8.0, hysteresis_c=1.0)}
    book = AlertBook("s", zones, [])

    def feed(value: float, minute: int) -> None:
        book.on_reading(
            SensorReading(
                sensor_id="p",
                quantity="temperature",
                value=value,
                unit="degC",
                time=datetime(2025, 1, 1, 0, minute, tzinfo=UTC),
                zone="z",
            )
        )

    feed(8.0, 0)  # at the limit: not a breach
    assert book.changed() == ([], [])
    feed(8.01, 1)
    feed(7.01, 2)  # inside but not by the hysteresis
    assert book.new[0].status == "open"
    feed(7.0, 3)
    assert book.new[0].status == "resolved"


async def test_alert_opened_by_a_concurrent_transaction_is_merged_not_duplicated(cloud: Cloud) -> None:
    """Another writer opens the alert while our batch is in flight: the batch must merge into it.

    On PostgreSQL our insert hits the partial unique index and the batch is retried; on SQLite the
    batch waits for the write lock. Either way one open alert results.
    """
    t = datetime(2025, 1, 1, 12, tzinfo=UTC)
    row = {
        "site_id": "site-1",
        "zone": "cold-1",
        "rule": "max_temperature",
        "status": "open",
        "source": "edge",
        "sensor_id": "probe-1",
        "limit": 8.0,
        "peak_value": 8.5,
        "last_value": 8.5,
        "first_breach_at": t,
        "last_breach_at": t,
    }
    async with cloud.engine.connect() as conn:
        conn = await db.write_connection(conn)
        transaction = await conn.begin()
        await conn.execute(alerts_db.alerts.insert().values(row))
        posting = asyncio.create_task(cloud.post(batch("edge-1", [(1, reading(10, 9.7))])))
        await asyncio.sleep(0.3)
        assert not posting.done()  # blocked behind the uncommitted alert
        await transaction.commit()
    response = await asyncio.wait_for(posting, 15)
    assert response.status_code == 200, response.text
    [alert] = await alerts(cloud, "all")
    assert (alert["status"], alert["source"], alert["peak_value"]) == ("open", "both", 9.7)
