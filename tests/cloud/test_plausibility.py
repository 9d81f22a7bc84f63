"""Events dated outside the plausibility window are kept for audit, counted per edge and shown,
but never applied (issue 12, item 7): a reading dated 2999 does not become a sensor's latest
value, a movement dated 2999 does not pin an item as present, a reading dated year 1 neither
rewrites an open alert's start nor opens a second alert. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import EPC_A, MAX_BODY, Cloud
from conftest import reading as conftest_reading
from sqlalchemy import select

from cloud.ingest import tables as ingest_db
from shelfsense.config import CloudSettings, Settings, ZoneLimits


def iso(when: datetime) -> str:
    return when.isoformat()


def reading(when: datetime, value: float) -> dict[str, Any]:
    return {**conftest_reading(0, value), "time": iso(when)}


def movement(when: datetime, to: str | None) -> dict[str, Any]:
    return {"kind": "stock_movement", "epc": EPC_A, "from_location": None, "to_location": to, "at": iso(when)}


def batch(events: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    created = datetime.now(UTC)
    return {
        "v": 1,
        "edge_id": "edge-1",
        "created_at": iso(created),
        "events": [{"seq": s, "event": e} for s, e in events],
    }


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        cloud=CloudSettings(
            db_url=db_url, max_body_bytes=MAX_BODY, max_event_age_s=7 * 86400, max_future_skew_s=300
        ),
        zones=[ZoneLimits(id="cold-1", site_id="site-1", min_temp_c=2.0, max_temp_c=8.0)],
    )


async def test_implausible_times_are_stored_but_never_applied(cloud: Cloud) -> None:
    now = datetime.now(UTC)  # here, not at import: a long test session must not age it
    recent = now - timedelta(minutes=10)
    far_future = datetime(2999, 1, 1, tzinfo=UTC)
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    first = await cloud.post(
        batch(
            [
                (1, reading(recent, 9.0)),  # beyond 8 °C: an alert opens at `recent`
                (2, movement(recent, None)),  # the item left the site
                (3, reading(far_future, 3.0)),
                (4, movement(far_future, "shelf-1")),
                (5, reading(year_one, 12.0)),
                (6, reading(now + timedelta(minutes=6), 4.0)),  # just past the 5-minute skew
                (7, reading(now - timedelta(days=8), 4.0)),  # just past the 7-day age
            ]
        )
    )
    assert first.json() == {"acked_through": 7, "accepted": 7, "duplicates": 0}, first.text

    [sensor] = (await cloud.get("/api/v1/sensors", token=cloud.admin)).json()["items"]
    assert (sensor["last_value"], sensor["last_time"][:19]) == (9.0, recent.isoformat()[:19])
    readings = (await cloud.get("/api/v1/sensors/probe-1/readings", token=cloud.admin)).json()
    assert [r["value"] for r in readings["items"]] == [9.0]
    stock = (await cloud.get("/api/v1/stock", token=cloud.admin, include_gone="true")).json()
    assert [(i["epc"], i["present"]) for i in stock["items"]] == [(EPC_A, False)]
    [alert] = (await cloud.get("/api/v1/alerts", token=cloud.admin, status="all")).json()["items"]
    assert (alert["first_breach_at"][:19], alert["peak_value"]) == (recent.isoformat()[:19], 9.0)

    # Kept for audit, flagged; counted and shown per edge; a resend is a duplicate, not a recount.
    async with cloud.engine.connect() as conn:
        flags = dict(
            (await conn.execute(select(ingest_db.events.c.seq, ingest_db.events.c.implausible))).all()
        )
    assert flags == {1: False, 2: False, 3: True, 4: True, 5: True, 6: True, 7: True}
    again = await cloud.post(batch([(3, reading(far_future, 3.0)), (8, reading(now, 5.0))]))
    assert again.json() == {"acked_through": 8, "accepted": 1, "duplicates": 1}
    edges = {e["edge_id"]: e for e in (await cloud.get("/api/v1/edges", token=cloud.admin)).json()["items"]}
    assert (edges["edge-1"]["events_implausible"], edges["edge-1"]["events_received"]) == (5, 8)
    assert edges["edge-2"]["events_implausible"] == 0
    [sensor] = (await cloud.get("/api/v1/sensors", token=cloud.admin)).json()["items"]
    assert sensor["last_value"] == 5.0  # plausible readings keep flowing
