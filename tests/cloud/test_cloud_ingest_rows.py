"""The fast ingest path (JSON validated on bytes, rows prepared outside the write transaction)
stores exactly what the slow path did, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from conftest import Cloud, alarm, at, batch, health, movement, observation, passage, reading
from sqlalchemy import select

from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.ingest import tables as ingest_db
from cloud.ingest.routes import parse_body
from cloud.ingest.service import prepare_batch
from cloud.stock import tables as stock_db
from shelfsense.contract import Batch

EPC = "3034257BF400B7800004CB2F"


async def rows(cloud: Cloud, table: db.Table, *columns: str) -> list[tuple[object, ...]]:
    query = select(*(table.c[c] for c in columns)).order_by(*(table.c[c] for c in columns))
    async with cloud.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(query)).all()]


def utc(seconds: float) -> datetime:
    return datetime.fromisoformat(at(seconds)).astimezone(UTC)


async def test_every_projection_row_binds_the_right_columns(cloud: Cloud) -> None:
    events = [
        (1, observation(0, EPC.lower())),  # EPCs are normalised to upper case
        (2, passage(1, EPC)),
        (3, movement(2, EPC, "backroom")),
        (4, reading(3, 4.5, flags=("stale",))),
        (5, reading(4, 61.0, quantity="humidity")),
        (6, alarm(5, "raised", 9.1)),
        (7, health(6)),
        (8, movement(1, EPC, "yard")),  # older than seq 3: must not win the latest state
    ]
    response = await cloud.post(batch("edge-1", events))
    assert response.status_code == 200, response.text
    assert response.json() == {"acked_through": 8, "accepted": 8, "duplicates": 0}

    t = stock_db.tag_observations
    assert await rows(cloud, t, "site_id", "seq", "epc", "reader", "antenna", "rssi", "count") == [
        ("site-1", 1, EPC, "outer", 1, -55.0, 3)
    ]
    assert await rows(cloud, t, "first_seen", "last_seen", "location") == [(utc(0), utc(1), "dock")]
    assert await rows(cloud, stock_db.portal_passages, "epc", "direction", "at", "inside_location") == [
        (EPC, "in", utc(1), "backroom")
    ]
    assert await rows(cloud, stock_db.stock_movements, "seq", "to_location", "reason", "at") == [
        (3, "backroom", "portal", utc(2)),
        (8, "yard", "portal", utc(1)),
    ]
    assert await rows(cloud, stock_db.stock_items, "epc", "location", "present", "updated_at") == [
        (EPC, "backroom", True, utc(2))
    ]
    assert await rows(
        cloud, sensors_db.sensor_readings, "quantity", "value", "unit", "time", "zone", "flags"
    ) == [
        ("humidity", 61.0, "%RH", utc(4), "cold-1", ""),
        ("temperature", 4.5, "degC", utc(3), "cold-1", "stale"),
    ]
    assert await rows(cloud, sensors_db.sensors, "quantity", "edge_id", "last_value", "last_time") == [
        ("humidity", "edge-1", 61.0, utc(4)),
        ("temperature", "edge-1", 4.5, utc(3)),
    ]
    assert await rows(cloud, ingest_db.local_alarms, "rule", "state", "value", "limit", "at") == [
        ("max_temperature", "raised", 9.1, 8.0, utc(5))
    ]
    assert await rows(
        cloud, ingest_db.device_health, "device_id", "connected", "frames_ok", "frames_bad", "at"
    ) == [("uhf-1", True, 10, 1, utc(6))]
    # The de-duplication log keeps each event's canonical JSON.
    payloads = await rows(cloud, ingest_db.events, "seq", "payload")
    assert json.loads(str(payloads[0][1]))["epc"] == EPC
    assert [json.loads(str(p))["kind"] for _, p in payloads] == [e["kind"] for _, e in events]


async def test_a_resend_with_new_events_projects_only_the_new_ones(cloud: Cloud) -> None:
    first = [(1, reading(0, 4.0)), (2, movement(1, EPC, "backroom"))]
    assert (await cloud.post(batch("edge-1", first))).status_code == 200
    again = [*first, (3, movement(2, EPC, "shelf-2")), (4, reading(3, 5.0))]
    response = await cloud.post(batch("edge-1", again))
    assert response.json() == {"acked_through": 4, "accepted": 2, "duplicates": 2}
    assert await rows(cloud, stock_db.stock_movements, "seq") == [(2,), (3,)]
    assert await rows(cloud, sensors_db.sensor_readings, "seq") == [(1,), (4,)]
    assert await rows(cloud, stock_db.stock_items, "location") == [("shelf-2",)]


async def test_a_body_without_contract_version_is_still_refused(cloud: Cloud) -> None:
    body = batch("edge-1", [(1, reading(0, 4.0))])
    del body["v"]  # the model has a default; the fast path must not accept it
    response = await cloud.post(body)
    assert response.status_code == 422
    assert "no contract version" in response.json()["detail"]


def test_fast_parse_equals_the_contract_parser_and_rows_cover_every_event() -> None:
    body = json.dumps(
        batch("edge-1", [(1, observation(0, EPC)), (2, reading(1, 3.0)), (5, health(2))])
    ).encode()
    fast = parse_body(body)
    assert fast == Batch.model_validate(json.loads(body))
    prepared = prepare_batch(fast, "site-1", "sqlite")
    assert [row[1] for row in prepared.events.rows] == [1, 2, 5]
    assert {r.table.name: len(r.rows) for r in prepared.projection.history} == {
        "tag_observations": 1,
        "sensor_readings": 1,
    }
    # SQLite gets timestamps exactly as SQLAlchemy stores them (naive UTC, microseconds).
    reading_row = prepared.projection.history[1].rows[0]
    assert reading_row[prepared.projection.history[1].names.index("time")] == "2025-01-01 12:00:01.000000"
