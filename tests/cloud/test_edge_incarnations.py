"""Edge incarnations: a wiped edge database opens a new sequence stream, never a silent duplicate.

cloud.ingest.edge_streams; SQLite and PostgreSQL. The edge side (a real wiped database, real
processes) is proved in tests/edge/test_wiped_edge.py.
"""

from __future__ import annotations

from conftest import Cloud, batch, health, reading

from cloud.alerts import tables as alerts_db
from cloud.alerts.messages import alert_message
from cloud.coldchain import sensor_tables as sensors_db
from cloud.coldchain.service import Notice
from cloud.core import db

OLD = "a" * 32
NEW = "b" * 32


def readings(seqs: range, base: float, incarnation: str | None) -> dict:
    extra = {"incarnation": incarnation} if incarnation else {}
    # Device times follow ``base`` too: a wiped edge's new readings are new readings, not re-sends of
    # the old ones (one reading per sensor, quantity and device time; migration 0016).
    return batch("edge-1", [(s, reading(base * 60 + s, base + s)) for s in seqs], **extra)


async def stored_values(cloud: Cloud) -> list[tuple[int, float]]:
    async with cloud.engine.connect() as conn:
        rows = await conn.execute(
            sensors_db.sensor_readings.select()
            .where(sensors_db.sensor_readings.c.edge_id == "edge-1")
            .order_by("seq")
        )
        return [(r.seq, r.value) for r in rows]


async def test_resent_seq_with_other_content_is_409_and_stores_nothing(cloud: Cloud) -> None:
    assert (await cloud.post(readings(range(1, 4), 1.0, OLD))).status_code == 200
    same = await cloud.post(readings(range(1, 4), 1.0, OLD))
    assert same.json() == {"acked_through": 3, "accepted": 0, "duplicates": 3}
    # seq 3 again, now with another value, next to a new seq 4: the whole batch is refused.
    other = batch("edge-1", [(3, reading(3, 99.0)), (4, reading(4, 5.0))], incarnation=OLD)
    response = await cloud.post(other)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "sequence_conflict"
    assert "seq 3 was already stored with different content" in response.json()["detail"]
    assert await stored_values(cloud) == [(1, 2.0), (2, 3.0), (3, 4.0)]
    # An edge without incarnations (older software) is told the same way.
    legacy = batch("edge-2", [(1, health(1))])
    assert (await cloud.post(legacy, edge="edge-2")).status_code == 200
    changed = await cloud.post(batch("edge-2", [(1, health(2))]), edge="edge-2")
    assert changed.status_code == 409 and changed.json()["code"] == "sequence_conflict"


async def test_new_incarnation_opens_a_new_stream_and_alerts_an_operator(cloud: Cloud) -> None:
    first = await cloud.post(readings(range(1, 4), 1.0, OLD))
    assert first.json()["acked_through"] == 3
    edges = {e["edge_id"]: e for e in (await cloud.get_ok("/api/v1/edges"))["items"]}
    assert edges["edge-1"]["incarnation"] == OLD
    assert (await cloud.get_ok("/api/v1/alerts", kind="edge_incarnation"))["total"] == 0

    # The edge's database was wiped: it starts at seq 1 again, under a new incarnation.
    wiped = await cloud.post(readings(range(1, 3), 10.0, NEW))
    assert wiped.status_code == 200, wiped.text
    assert wiped.json() == {"acked_through": 2, "accepted": 2, "duplicates": 0}
    assert await stored_values(cloud) == [(1, 2.0), (2, 3.0), (3, 4.0), (4, 11.0), (5, 12.0)]
    # A resend within the new stream is a duplicate of the new stream, not of the old one.
    again = await cloud.post(readings(range(1, 4), 10.0, NEW))
    assert again.json() == {"acked_through": 3, "accepted": 1, "duplicates": 2}

    edges = {e["edge_id"]: e for e in (await cloud.get_ok("/api/v1/edges"))["items"]}
    assert edges["edge-1"]["incarnation"] == NEW
    assert edges["edge-1"]["acked_through"] == 3
    assert edges["edge-1"]["incarnation_started_at"] is not None
    alerts = (await cloud.get_ok("/api/v1/alerts", kind="edge_incarnation"))["items"]
    assert len(alerts) == 1
    assert alerts[0]["zone"] == "edge-1" and alerts[0]["site_id"] == "site-1"
    assert alerts[0]["severity"] == "critical" and alerts[0]["status"] == "open"
    detail = await cloud.get_ok(f"/api/v1/alerts/{alerts[0]['id']}")  # the operator's view works
    assert "edge edge-1 database replaced" in detail["limit_source"]
    async with cloud.engine.connect() as conn:
        row = (
            (await conn.execute(alerts_db.alerts.select().where(alerts_db.alerts.c.id == alerts[0]["id"])))
            .mappings()
            .one()
        )
    message = alert_message(Notice(dict(row), "raised"), at=db.utcnow())  # what people are sent
    assert message.title.startswith("Edge database replaced") and message.severity == "critical"
    expected = f"Edge edge-1's database was replaced: incarnation {NEW[:12]} follows {OLD[:9]}"
    assert message.text.startswith(expected)
    zh = alert_message(Notice(dict(row), "raised"), at=db.utcnow(), language="zh-CN").text
    assert zh.startswith("边缘 edge-1 的数据库已更换") and f"新实例 {NEW[:12]} 接替 {OLD[:9]}" in zh

    # The replaced database (a copy that comes back) and a batch without incarnation are refused.
    stale = await cloud.post(readings(range(4, 6), 1.0, OLD))
    assert stale.status_code == 409 and stale.json()["code"] == "incarnation_superseded"
    bare = await cloud.post(readings(range(4, 6), 1.0, None))
    assert bare.status_code == 409 and bare.json()["code"] == "incarnation_required"
    assert len(await stored_values(cloud)) == 6


async def test_first_incarnation_of_an_edge_raises_no_alert(cloud: Cloud) -> None:
    assert (await cloud.post(readings(range(1, 3), 1.0, NEW))).json()["acked_through"] == 2
    assert (await cloud.get_ok("/api/v1/alerts", kind="edge_incarnation", status="all"))["total"] == 0


async def test_edge_health_shows_a_full_disk_while_the_edge_reports_it(cloud: Cloud) -> None:
    async def edge_one() -> dict:
        return {e["edge_id"]: e for e in (await cloud.get_ok("/api/v1/edges"))["items"]}["edge-1"]

    assert (await edge_one())["disk_full"] is False
    full = batch("edge-1", [(1, health(1))], incarnation=NEW, disk_full=True)
    assert (await cloud.post(full)).status_code == 200
    shown = await edge_one()
    assert shown["disk_full"] is True and shown["disk_full_since"] is not None
    assert (await cloud.post(batch("edge-1", [], incarnation=NEW))).json()["acked_through"] == 1
    shown = await edge_one()
    assert shown["disk_full"] is False and shown["disk_full_since"] is None
