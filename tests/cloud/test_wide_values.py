"""No stored value can poison a batch (issue 18): the widest values the contract and the master
data allow, on SQLite and PostgreSQL, are stored, projected and alerted on, and a resend is a
clean duplicate. Before revision 0010 a product-limit alert listing a zone's SKUs overflowed
``alerts.limit_source`` VARCHAR(160) on PostgreSQL: the batch got a 500 on every resend."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MAX_BODY, T0, Cloud, at

from cloud.admin import create_edge_async
from cloud.core import db
from cloud.masterdata import tables as masterdata_db
from shelfsense.config import CloudSettings, Settings, ZoneLimits
from shelfsense.contract import INT32_MAX, INT64_MAX

WIDE = 128  # the contract's Ident maximum (IDENT_PATTERN)
SITE, EDGE, ZONE = ("S" * WIDE, "E" * WIDE, "Z" * WIDE)
SENSOR, READER, PORTAL, DEVICE = ("p" * WIDE, "r" * WIDE, "d" * WIDE, "h" * WIDE)
SKUS = [f"{i:03d}".ljust(WIDE, "K") for i in range(40)]  # 40 products stored in one cold room
EPCS = [f"{i:04X}".rjust(124, "F") for i in range(40)]  # EPC_PATTERN allows 124 hex digits


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        cloud=CloudSettings(max_event_age_s=None, db_url=db_url, max_body_bytes=MAX_BODY * 4),
        zones=[ZoneLimits(id=ZONE, site_id=SITE, min_temp_c=-40.0, max_temp_c=25.0, max_humidity=90.0)],
    )


async def _store_products(cloud: Cloud) -> None:
    now = db.utcnow()
    async with cloud.engine.begin() as conn:
        await conn.execute(
            masterdata_db.products.insert(),
            [
                {
                    "sku": s,
                    "name": "n" * 200,
                    "storage_temp_min_c": 2.0,
                    "storage_temp_max_c": 5.0,
                    "updated_at": now,
                }
                for s in SKUS
            ],
        )
        await conn.execute(
            masterdata_db.lots.insert(), [{"sku": s, "lot_code": "L" * WIDE, "updated_at": now} for s in SKUS]
        )
        await conn.execute(
            masterdata_db.items.insert(),
            [
                {"epc": e, "sku": s, "lot_code": "L" * WIDE, "updated_at": now}
                for e, s in zip(EPCS, SKUS, strict=True)
            ],
        )


def _wide_events() -> list[dict[str, Any]]:
    moves = [
        {
            "kind": "stock_movement",
            "epc": e,
            "from_location": None,
            "to_location": ZONE,
            "reason": "adjustment",
            "at": at(-60),
        }
        for e in EPCS
    ]
    return [
        *moves,
        {
            "kind": "tag_observation",
            "epc": EPCS[0],
            "reader": READER,
            "antenna": 65535,
            "rssi": -150.0,
            "first_seen": at(0),
            "last_seen": at(1),
            "count": INT32_MAX,
            "location": ZONE,
        },
        {
            "kind": "portal_passage",
            "epc": EPCS[1],
            "portal": PORTAL,
            "direction": "unknown",
            "at": at(2),
            "inside_location": ZONE,
            "outside_location": "o" * WIDE,
        },
        {
            "kind": "device_health",
            "device_id": DEVICE,
            "connected": False,
            "last_frame_at": at(3),
            "frames_ok": INT64_MAX,
            "frames_bad": INT64_MAX,
            "reconnects": INT64_MAX,
            "at": at(3),
        },
        {
            "kind": "sensor_reading",
            "sensor_id": SENSOR,
            "quantity": "temperature",
            "value": 6.0,
            "unit": "degC",
            "time": at(4),
            "zone": ZONE,
            "flags": ["out_of_range", "stale", "clock_skew"] * 20,
        },
        {  # unflagged: flagged readings do not drive alerts
            "kind": "sensor_reading",
            "sensor_id": SENSOR,
            "quantity": "temperature",
            "value": 6.0,
            "unit": "degC",
            "time": at(6),
            "zone": ZONE,
        },
        {
            "kind": "local_alarm",
            "zone": ZONE,
            "sensor_id": SENSOR,
            "rule": "max_humidity",
            "state": "raised",
            "value": 1e308,
            "limit": -1e308,
            "at": at(5),
        },
    ]


async def test_widest_values_never_poison_a_batch(cloud: Cloud) -> None:
    token = (await create_edge_async(cloud.engine, SITE, EDGE))[1]
    cloud.edge_tokens[EDGE] = token
    await _store_products(cloud)
    events = _wide_events()
    body = {
        "v": 1,
        "edge_id": EDGE,
        "created_at": T0.isoformat(),
        "events": [{"seq": i + 1, "event": e} for i, e in enumerate(events)],
    }
    first = await cloud.post(body, edge=EDGE)
    assert first.status_code == 200, first.text
    assert first.json() == {"acked_through": len(events), "accepted": len(events), "duplicates": 0}
    again = await cloud.post(body, edge=EDGE)
    assert again.json() == {"acked_through": len(events), "accepted": 0, "duplicates": len(events)}

    alerts = (await cloud.get("/api/v1/alerts", token=cloud.admin, site=SITE)).json()["items"]
    product_alert = next(a for a in alerts if (a["limit_source"] or "").startswith("product:"))
    assert product_alert["limit_source"] == "product:" + ",".join(sorted(SKUS))  # 5,000+ characters
    assert product_alert["limit"] == 5.0
    [sensor] = (await cloud.get("/api/v1/sensors", token=cloud.admin, site=SITE)).json()["items"]
    assert (sensor["sensor_id"], sensor["zone"], sensor["last_value"]) == (SENSOR, ZONE, 6.0)
    readings = (await cloud.get(f"/api/v1/sensors/{SENSOR}/readings", token=cloud.admin, site=SITE)).json()
    flagged = [r for r in readings["items"] if r["flags"]]
    assert [r["flags"] for r in flagged] == [["out_of_range", "stale", "clock_skew"]]  # each once
    stock = (await cloud.get("/api/v1/stock", token=cloud.admin, site=SITE, limit=100)).json()
    assert stock["by_location"] == {ZONE: len(EPCS)}
