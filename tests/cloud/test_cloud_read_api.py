"""Read API: stock, items, sensors, edges, summary, pagination, auth and error bodies."""

from __future__ import annotations

from conftest import EPC_A, EPC_B, Cloud, batch, health, movement, observation, passage, reading


async def test_stock_follows_movements(cloud: Cloud) -> None:
    await cloud.post(
        batch(
            "edge-1",
            [
                (1, movement(0, EPC_A, "backroom")),
                (2, movement(1, EPC_B, "backroom")),
                (3, movement(5, EPC_B, "shelf", frm="backroom")),
                (4, movement(9, EPC_A, None, frm="backroom")),  # left the site
            ],
        )
    )
    stock = await cloud.get_ok("/api/v1/stock", site="site-1")
    assert [(i["epc"], i["location"]) for i in stock["items"]] == [(EPC_B, "shelf")]
    assert stock["by_location"] == {"shelf": 1}
    everything = await cloud.get_ok("/api/v1/stock", include_gone="true")
    assert {i["epc"]: i["present"] for i in everything["items"]} == {EPC_A: False, EPC_B: True}
    # A late, older movement does not overwrite the newer state.
    await cloud.post(batch("edge-2", [(1, movement(3, EPC_B, "backroom"))]), edge="edge-2")
    assert (await cloud.get_ok("/api/v1/stock", location="shelf"))["total"] == 1
    # An item coming back.
    await cloud.post(batch("edge-1", [(5, movement(20, EPC_A, "backroom"))]))
    stock = await cloud.get_ok("/api/v1/stock")
    assert stock["by_location"] == {"backroom": 1, "shelf": 1}
    assert (await cloud.get_ok("/api/v1/summary"))["items_on_hand"] == 2
    assert (await cloud.get_ok("/api/v1/stock", site="site-2"))["total"] == 0


async def test_item_history(cloud: Cloud) -> None:
    events = [(1, observation(0, EPC_A)), (2, passage(2, EPC_A)), (3, movement(2, EPC_A, "backroom"))]
    await cloud.post(batch("edge-1", events))
    item = await cloud.get_ok(f"/api/v1/items/{EPC_A.lower()}")
    assert item["epc"] == EPC_A
    assert [s["location"] for s in item["stock"]] == ["backroom"]
    assert [o["reader"] for o in item["observations"]] == ["outer"]
    assert [p["direction"] for p in item["passages"]] == ["in"]
    assert [m["to_location"] for m in item["movements"]] == ["backroom"]


async def test_sensors_and_readings_window(cloud: Cloud) -> None:
    events = [(s, reading(s * 60, 3.0 + s)) for s in range(1, 6)]
    events.append((6, reading(30, 55.0, quantity="humidity")))
    await cloud.post(batch("edge-1", events))
    sensors = (await cloud.get_ok("/api/v1/sensors"))["items"]
    assert {(s["quantity"], s["last_value"]) for s in sensors} == {("temperature", 8.0), ("humidity", 55.0)}
    window = await cloud.get_ok(
        "/api/v1/sensors/probe-1/readings",
        since="2025-01-01T12:02:00Z",
        until="2025-01-01T12:04:00+00:00",
        quantity="temperature",
    )
    assert [r["value"] for r in window["items"]] == [5.0, 6.0]
    assert window["total"] == 2
    naive = await cloud.get_ok("/api/v1/sensors/probe-1/readings", since="2025-01-01T12:04:00")
    assert [r["value"] for r in naive["items"]] == [7.0, 8.0]


async def test_edges_show_sync_state_and_device_health(cloud: Cloud) -> None:
    await cloud.post(
        batch("edge-1", [(1, health(0)), (2, health(5, connected=False)), (3, health(1, device="modbus-1"))])
    )
    edges = {e["edge_id"]: e for e in (await cloud.get_ok("/api/v1/edges"))["items"]}
    assert edges["edge-1"]["acked_through"] == 3
    assert edges["edge-1"]["events_received"] == 3
    devices = {d["device_id"]: d["connected"] for d in edges["edge-1"]["devices"]}
    assert devices == {"uhf-1": False, "modbus-1": True}  # the latest health per device
    assert edges["edge-3"]["site_id"] == "site-2"
    assert (await cloud.get_ok("/api/v1/edges", site="site-2"))["total"] == 1


async def test_summary(cloud: Cloud) -> None:
    events = [(1, observation(0, EPC_A)), (2, passage(1, EPC_A)), (3, movement(1, EPC_A, "backroom"))]
    events += [(4, reading(2, 4.0)), (5, reading(3, 9.0))]
    await cloud.post(batch("edge-1", events))
    await cloud.post(batch("edge-3", [(1, reading(2, 4.0, zone=None))]), edge="edge-3")
    summary = await cloud.get_ok("/api/v1/summary", site="site-1")
    edges = summary.pop("edges")
    assert summary == {
        "items_on_hand": 1,
        "sensor_readings": 2,
        "tag_observations": 1,
        "passages": 1,
        "passages_direction_unknown": 0,
        "alerts_open": 1,
        "alerts_total": 1,
        "events_received": 5,
    }
    assert [(e["edge_id"], e["acked_through"]) for e in edges] == [("edge-1", 5), ("edge-2", 0)]
    assert (await cloud.get_ok("/api/v1/summary"))["events_received"] == 6


async def test_pagination(cloud: Cloud) -> None:
    epcs = [f"AA{n:06X}" for n in range(25)]
    await cloud.post(batch("edge-1", [(i + 1, movement(i, epc, "shelf")) for i, epc in enumerate(epcs)]))
    pages = [await cloud.get_ok("/api/v1/stock", limit=10, offset=offset) for offset in (0, 10, 20)]
    assert [len(p["items"]) for p in pages] == [10, 10, 5]
    assert all(p["total"] == 25 for p in pages)
    assert [i["epc"] for p in pages for i in p["items"]] == sorted(epcs)
    too_big = await cloud.get("/api/v1/stock", limit=5000)
    assert too_big.status_code == 422
    assert too_big.json()["code"] == "validation_error"
    assert "limit" in too_big.json()["detail"]


async def test_read_api_needs_a_user_token(cloud: Cloud) -> None:
    assert (await cloud.client.get("/api/v1/stock")).status_code == 401
    edge_token = await cloud.get("/api/v1/stock", token=cloud.edge_tokens["edge-1"])
    assert edge_token.status_code == 403
    assert (await cloud.get("/api/v1/stock", token="ssu_unknown")).json() == {
        "detail": "invalid or revoked token",
        "code": "unauthenticated",
    }


async def test_admin_registers_edges_viewer_cannot(cloud: Cloud) -> None:
    body = {"site_id": "site-9", "name": "edge-9"}
    denied = await cloud.client.post(
        "/api/v1/edges", json=body, headers={"Authorization": f"Bearer {cloud.viewer}"}
    )
    assert denied.status_code == 403
    created = await cloud.client.post(
        "/api/v1/edges", json=body, headers={"Authorization": f"Bearer {cloud.admin}"}
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("sse_")
    assert (
        await cloud.post(batch("edge-9", [(1, reading(0, 4.0))]), edge="edge-9", token=token)
    ).status_code == 200
    conflict = await cloud.client.post(
        "/api/v1/edges",
        json={"site_id": "site-1", "name": "edge-9"},
        headers={"Authorization": f"Bearer {cloud.admin}"},
    )
    assert conflict.status_code == 409
    revoked = await cloud.client.delete(
        "/api/v1/edges/edge-9/tokens", headers={"Authorization": f"Bearer {cloud.admin}"}
    )
    assert revoked.json() == {"revoked": 1}
    assert (
        await cloud.post(batch("edge-9", [(2, reading(1, 4.0))]), edge="edge-9", token=token)
    ).status_code == 401


async def test_health_endpoints_and_unknown_route(cloud: Cloud) -> None:
    assert (await cloud.client.get("/healthz")).json() == {"status": "ok"}
    assert (await cloud.client.get("/readyz")).json() == {"status": "ready"}
    missing = await cloud.client.get("/api/v1/nothing")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    docs = await cloud.client.get("/openapi.json")
    assert "/api/v1/edges/{edge_id}/batches" in docs.json()["paths"]


async def test_movements_ledger_filters_and_pages(cloud: Cloud) -> None:
    await cloud.post(
        batch(
            "edge-1",
            [
                (1, movement(0, EPC_A, "backroom")),
                (2, movement(10, EPC_B, "backroom")),
                (3, movement(20, EPC_B, "shelf", frm="backroom")),
                (4, movement(30, EPC_A, None, frm="backroom")),
            ],
        )
    )
    await cloud.post(batch("edge-3", [(1, movement(5, EPC_A, "dock"))]), edge="edge-3")
    everything = await cloud.get_ok("/api/v1/movements")
    assert everything["total"] == 5
    assert [m["seq"] for m in everything["items"]] == [4, 3, 2, 1, 1]  # newest first
    at_backroom = await cloud.get_ok("/api/v1/movements", location="backroom", site="site-1")
    assert [(m["epc"], m["from_location"], m["to_location"]) for m in at_backroom["items"]] == [
        (EPC_A, "backroom", None),
        (EPC_B, "backroom", "shelf"),
        (EPC_B, None, "backroom"),
        (EPC_A, None, "backroom"),
    ]
    window = await cloud.get_ok(
        "/api/v1/movements", epc=EPC_B.lower(), since="2025-01-01T12:00:05Z", until="2025-01-01T12:00:20"
    )
    assert [m["to_location"] for m in window["items"]] == ["backroom"]
    page = await cloud.get_ok("/api/v1/movements", limit=2, offset=2, edge="edge-1")
    assert ([m["seq"] for m in page["items"]], page["total"]) == ([2, 1], 4)
    assert (await cloud.get_ok("/api/v1/movements", reason="adjustment"))["total"] == 0
    # Keyset pages: the same rows in the same order as one big page, with no count after the first.
    first = await cloud.get_ok("/api/v1/movements", limit=2)
    pages, cursor = [first], first["next"]
    while cursor is not None:
        pages.append(await cloud.get_ok("/api/v1/movements", limit=2, cursor=cursor))
        cursor = pages[-1]["next"]
    assert [m["id"] for p in pages for m in p["items"]] == [m["id"] for m in everything["items"]]
    assert first["total"] == 5 and {p["total"] for p in pages[1:]} == {None}
    assert (await cloud.get("/api/v1/movements", cursor="yesterday")).status_code == 422
