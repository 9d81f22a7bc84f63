"""Ingest endpoint: auth, limits, validation, de-duplication and acknowledgement (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator

from conftest import MAX_BODY, Cloud, at, batch, health, movement, reading
from sqlalchemy import func, select

from cloud.admin import revoke_token_async
from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.ingest import tables as ingest_db
from cloud.stock import tables as stock_db


async def count(cloud: Cloud, table: db.Table, **where: str) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with cloud.engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


def three_events(edge: str = "edge-1") -> dict:
    return batch(edge, [(1, reading(0, 4.0)), (2, movement(1, "AB12CD34", "backroom")), (3, health(2))])


async def test_batch_is_stored_and_acked(cloud: Cloud) -> None:
    response = await cloud.post(three_events())
    assert response.status_code == 200, response.text
    assert response.json() == {"acked_through": 3, "accepted": 3, "duplicates": 0}
    assert await count(cloud, ingest_db.events, edge_id="edge-1") == 3
    assert await count(cloud, sensors_db.sensor_readings) == 1
    assert await count(cloud, stock_db.stock_items) == 1


async def test_missing_unknown_and_revoked_tokens_are_401(cloud: Cloud) -> None:
    missing = await cloud.post(three_events(), token="")
    assert missing.status_code == 401
    assert missing.json()["code"] == "unauthenticated"
    assert (await cloud.post(three_events(), token="sse_not-a-real-token")).status_code == 401
    assert await revoke_token_async(cloud.engine, cloud.edge_tokens["edge-1"])
    assert (await cloud.post(three_events())).status_code == 401
    assert await count(cloud, ingest_db.events) == 0


async def test_other_edges_token_is_403_and_writes_nothing(cloud: Cloud) -> None:
    # Token of edge-2 on edge-1's path.
    wrong_path = await cloud.post(three_events("edge-1"), edge="edge-1", token=cloud.edge_tokens["edge-2"])
    assert wrong_path.status_code == 403
    # Token and path of edge-2 but the body claims edge-1.
    wrong_body = await cloud.post(three_events("edge-1"), edge="edge-2")
    assert wrong_body.status_code == 403
    assert wrong_body.json() == {
        "detail": "batch.edge_id does not match the authenticated edge",
        "code": "forbidden",
    }
    assert await count(cloud, ingest_db.events) == 0
    assert await count(cloud, sensors_db.sensor_readings) == 0
    edges = await cloud.get_ok("/api/v1/edges")
    assert {e["edge_id"]: e["acked_through"] for e in edges["items"]} == {
        "edge-1": 0,
        "edge-2": 0,
        "edge-3": 0,
    }


async def test_user_token_cannot_post_batches(cloud: Cloud) -> None:
    response = await cloud.post(three_events(), token=cloud.admin)
    assert response.status_code == 403


async def test_replay_is_deduplicated(cloud: Cloud) -> None:
    body = three_events()
    first = (await cloud.post(body)).json()
    state = await cloud.get_ok("/api/v1/summary")
    again = await cloud.post(body, gzipped=True)
    assert again.status_code == 200
    assert again.json() == {"acked_through": 3, "accepted": 0, "duplicates": 3}
    assert first["accepted"] == 3
    assert without_last_seen(await cloud.get_ok("/api/v1/summary")) == without_last_seen(state)
    assert await count(cloud, sensors_db.sensor_readings) == 1
    edge = (await cloud.get_ok("/api/v1/edges"))["items"][0]
    assert (edge["events_received"], edge["duplicates"], edge["batches"]) == (3, 3, 2)
    metrics = (await cloud.client.get("/metrics")).text
    assert "shelfsense_event_duplicates_total 3" in metrics
    assert 'shelfsense_events_ingested_total{kind="sensor_reading"} 1' in metrics


def without_last_seen(summary: dict) -> dict:
    """A replay changes nothing but the edges' last_seen."""
    return {**summary, "edges": [{**e, "last_seen": None} for e in summary["edges"]]}


async def test_partial_overlap_accepts_only_new(cloud: Cloud) -> None:
    await cloud.post(batch("edge-1", [(1, reading(0, 4.0)), (2, reading(1, 4.1))]))
    response = await cloud.post(batch("edge-1", [(2, reading(1, 4.1)), (3, reading(2, 4.2))]))
    assert response.json() == {"acked_through": 3, "accepted": 1, "duplicates": 1}
    assert await count(cloud, sensors_db.sensor_readings) == 3


async def test_ack_is_highest_contiguous_sequence(cloud: Cloud) -> None:
    first = await cloud.post(batch("edge-1", [(s, reading(s, 4.0)) for s in (1, 2, 3, 4, 5, 8)]))
    assert first.json()["acked_through"] == 5
    later = await cloud.post(batch("edge-1", [(6, reading(6, 4.0)), (7, reading(7, 4.0))]))
    assert later.json() == {"acked_through": 8, "accepted": 2, "duplicates": 0}
    # Per edge: edge-2's own sequence is independent.
    other = await cloud.post(batch("edge-2", [(2, reading(2, 4.0))]), edge="edge-2")
    assert other.json()["acked_through"] == 0


async def test_empty_batch_is_a_heartbeat(cloud: Cloud) -> None:
    response = await cloud.post(batch("edge-1", []))
    assert response.json() == {"acked_through": 0, "accepted": 0, "duplicates": 0}
    edge = (await cloud.get_ok("/api/v1/edges"))["items"][0]
    assert edge["last_seen"] is not None


async def test_body_over_limit_is_413(cloud: Cloud) -> None:
    big = batch("edge-1", [(1, reading(0, 4.0))], created_at=at(0) + " " * MAX_BODY)
    response = await cloud.post(json.dumps(big).encode())
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


async def test_streamed_body_without_length_over_limit_is_413(cloud: Cloud) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    headers = {"Authorization": f"Bearer {cloud.edge_tokens['edge-1']}"}
    response = await cloud.client.post("/api/v1/edges/edge-1/batches", content=chunks(), headers=headers)
    assert response.status_code == 413


async def test_gzip_bomb_is_413(cloud: Cloud) -> None:
    bomb = gzip.compress(b"{" + b" " * (MAX_BODY * 50))
    assert len(bomb) < MAX_BODY  # small on the wire, huge inflated
    headers = {"Content-Encoding": "gzip"}
    response = await cloud.post(bomb, headers=headers)
    assert response.status_code == 413
    metrics = (await cloud.client.get("/metrics")).text
    assert 'shelfsense_batches_refused_total{reason="body_too_large"} 1' in metrics


async def test_corrupt_gzip_and_unknown_encoding(cloud: Cloud) -> None:
    corrupt = await cloud.post(b"\x1f\x8b not gzip at all", headers={"Content-Encoding": "gzip"})
    assert (corrupt.status_code, corrupt.json()["code"]) == (400, "bad_encoding")
    truncated = gzip.compress(json.dumps(three_events()).encode())[:-12]
    response = await cloud.post(truncated, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    brotli = await cloud.post(three_events(), headers={"Content-Encoding": "br"})
    assert brotli.status_code == 415


async def test_malformed_body_is_422_naming_the_field(cloud: Cloud) -> None:
    bad = batch("edge-1", [(1, reading(0, 4.0)), (2, {**reading(1, 4.0), "value": "hot"})])
    response = await cloud.post(bad)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_batch"
    assert "events.1.event.sensor_reading.value" in body["detail"]
    assert await count(cloud, ingest_db.events) == 0  # nothing partial
    not_json = await cloud.post(b"{nope")
    assert (not_json.status_code, not_json.json()["code"]) == (422, "invalid_batch")
    deep = await cloud.post(b'{"v": 1, "events": ' + b"[" * 50000)
    assert (deep.status_code, deep.json()["detail"]) == (422, "batch body is nested too deeply")
    unordered = await cloud.post(batch("edge-1", [(2, reading(0, 4.0)), (1, reading(1, 4.0))]))
    assert unordered.status_code == 422
    assert "events" in unordered.json()["detail"]


async def test_unsupported_contract_version_is_422(cloud: Cloud) -> None:
    response = await cloud.post({**three_events(), "v": 2})
    assert response.status_code == 422
    assert "unsupported sync contract version" in response.json()["detail"]
    assert response.json()["code"] == "unsupported_version"


async def test_thousands_of_events_in_one_batch(cloud: Cloud) -> None:
    settings = cloud.app.state.settings
    big = settings.cloud.model_copy(update={"max_body_bytes": 8 * 1024 * 1024})
    cloud.app.state.settings = settings.model_copy(update={"cloud": big})
    events = [(s, reading(s, 4.0 + (s % 10) / 10, sensor=f"probe-{s % 7}")) for s in range(1, 5001)]
    started = time.perf_counter()
    response = await cloud.post(batch("edge-1", events), gzipped=True, headers={})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.json() == {"acked_through": 5000, "accepted": 5000, "duplicates": 0}
    assert await count(cloud, sensors_db.sensor_readings) == 5000
    assert (await cloud.get_ok("/api/v1/sensors"))["total"] == 7
    assert elapsed < 10, f"5000 events took {elapsed:.1f} s"
