"""Hostile HTTP input gets a 4xx with the documented ``{detail, code, errors}`` body, never a 500.

Each case below was a 500 before (issue 12, item 12): ids, offsets and sequence numbers at or past
2**63, datetimes that overflow when converted to UTC, a non-scalar contract version, numbers with
thousands of digits, infinite or subnormal floats, and deep or huge admin imports. Every case runs
on SQLite and PostgreSQL: the overflows surface differently in each driver.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import Cloud, batch, reading

BIG = 2**63
HUGE_DIGITS = "9" * 5000
FAR_DATE = "9999-12-31T23:59:59-01:00"  # valid ISO 8601, but year 10000 in UTC
EARLY_DATE = "0001-01-01T00:00:00+01:00"  # year 0 in UTC

GET_CASES: list[tuple[str, dict[str, Any]]] = [
    (f"/api/v1/alerts/{BIG}", {}),
    (f"/api/v1/alerts/{BIG}/deliveries", {}),
    (f"/api/v1/alerts/{-BIG - 1}", {}),
    (f"/api/v1/stocktakes/{BIG}", {}),
    (f"/api/v1/proposals/{BIG}", {}),
    ("/api/v1/alerts", {"offset": BIG}),
    ("/api/v1/stock", {"offset": BIG}),
    ("/api/v1/sensors/probe-1/readings", {"offset": 15064259964576211451820256526336}),
    ("/api/v1/movements", {"offset": BIG}),
    ("/api/v1/movements", {"since": FAR_DATE}),
    ("/api/v1/movements", {"until": EARLY_DATE}),
    ("/api/v1/sensors/probe-1/readings", {"since": FAR_DATE}),
    ("/api/v1/kpis", {"until": FAR_DATE}),
    ("/api/v1/epcis/events", {"since": FAR_DATE}),
    ("/api/v1/lots/1", {"since": FAR_DATE}),
    ("/api/v1/zones/cold-1/mkt", {"until": FAR_DATE}),
    ("/api/v1/lots", {"expiring_within_days": "inf"}),
    ("/api/v1/lots", {"expiring_within_days": "1e308"}),
    ("/api/v1/lots", {"offset": HUGE_DIGITS}),
    ("/api/v1/lots/1", {"activation_energy_kj": "1e-320"}),
    ("/api/v1/zones/cold-1/mkt", {"activation_energy_kj": "1e-320"}),
]


def _assert_client_error(response: Any) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (
        response.request.url,
        response.status_code,
        response.text[:300],
    )
    body: dict[str, Any] = response.json()
    assert isinstance(body["detail"], str) and isinstance(body["code"], str)
    return body


async def test_hostile_queries_are_client_errors(cloud: Cloud) -> None:
    # One app for all cases (each case is a request, not a setup).
    for path, params in GET_CASES:
        _assert_client_error(await cloud.get(path, token=cloud.admin, **params))


async def test_ids_beyond_int64_in_bodies_and_paths(cloud: Cloud) -> None:
    auth = {"Authorization": f"Bearer {cloud.admin}"}
    response = await cloud.client.post(
        "/api/v1/proposals/exported", json={"ids": [1, -17178546266701410206744576, BIG]}, headers=auth
    )
    assert _assert_client_error(response)["errors"]
    for action, text in (("acknowledge", {"comment": "x"}), ("resolve", {"reason": "x"})):
        _assert_client_error(
            await cloud.client.post(f"/api/v1/alerts/{BIG}/{action}", json=text, headers=auth)
        )
    for path in (f"/api/v1/stocktakes/discrepancies/{BIG}/accept", f"/api/v1/proposals/{BIG}/approve"):
        _assert_client_error(await cloud.client.post(path, json={}, headers=auth))


BATCH_CASES: list[tuple[str, bytes]] = [
    ("seq_2_63", json.dumps(batch("edge-1", [(BIG, reading(0, 5.0))])).encode()),
    ("version_list", json.dumps({**batch("edge-1", [(1, reading(0, 5.0))]), "v": [1]}).encode()),
    ("version_dict", json.dumps({**batch("edge-1", [(1, reading(0, 5.0))]), "v": {"a": 1}}).encode()),
    ("far_date", json.dumps(batch("edge-1", [(1, {**reading(0, 5.0), "time": FAR_DATE})])).encode()),
    ("early_date", json.dumps(batch("edge-1", [(1, {**reading(0, 5.0), "time": EARLY_DATE})])).encode()),
    (
        "created_far",
        json.dumps({**batch("edge-1", [(1, reading(0, 5.0))]), "created_at": FAR_DATE}).encode(),
    ),
    (
        "digits_value",
        json.dumps(batch("edge-1", [(1, reading(0, 5.0))])).replace("5.0", HUGE_DIGITS, 1).encode(),
    ),
    (
        "digits_seq",
        json.dumps(batch("edge-1", [(1, reading(0, 5.0))]))
        .replace('"seq": 1', f'"seq": {HUGE_DIGITS}')
        .encode(),
    ),
    ("huge_float", json.dumps(batch("edge-1", [(1, reading(0, 5.0))])).replace("5.0", "1e400", 1).encode()),
]


async def test_hostile_batches_are_refused_and_the_edge_keeps_syncing(cloud: Cloud) -> None:
    for name, body in BATCH_CASES:
        body_json = _assert_client_error(await cloud.post(body))
        assert body_json["code"] in {"invalid_batch", "unsupported_version"}, (name, body_json)
    ok = await cloud.post(batch("edge-1", [(1, reading(0, 5.0))]))
    assert ok.json() == {"acked_through": 1, "accepted": 1, "duplicates": 0}, ok.text


PRODUCTS = "/api/v1/master/products/import"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


IMPORT_CASES = [
    (PRODUCTS, "application/json", _nested(100_000)),
    (PRODUCTS, "application/json", '{"items": ' + _nested(100_000) + "}"),
    (PRODUCTS, "application/json", json.dumps([{"sku": "A", "name": "x", "gtin": HUGE_DIGITS}])),
    (PRODUCTS, "application/json", '[{"sku": "A", "shelf_life_days": ' + HUGE_DIGITS + "}]"),
    (PRODUCTS, "application/json", json.dumps([{"sku": "A", "activation_energy_kj": 1e-320}])),
    (PRODUCTS, "application/json", json.dumps([{"sku": "A", "shelf_life_days": 2**63}])),
    (PRODUCTS, "text/csv", "sku,name\n" + "A,x\n" * 10 + '"' + "x" * 200_000 + '"\n'),
    # Larger than the test app's 64 KiB body limit: refused before parsing.
    (PRODUCTS, "application/json", json.dumps([{"sku": f"S{i}", "name": "x" * 100} for i in range(3000)])),
    ("/api/v1/replenish/suppliers/import", "application/json", _nested(100_000)),
]


async def test_hostile_admin_imports(cloud: Cloud) -> None:
    """Deep, huge-number, subnormal and oversized imports: 4xx, and nothing was imported."""
    for path, content_type, body in IMPORT_CASES:
        response = await cloud.client.post(
            path,
            content=body.encode(),
            headers={"Authorization": f"Bearer {cloud.admin}", "Content-Type": content_type},
        )
        _assert_client_error(response)
    assert (await cloud.get("/api/v1/products", token=cloud.admin)).json()["total"] == 0
