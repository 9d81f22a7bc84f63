"""Stock rows name their SKU and lot, ``by_location`` follows every filter, the movement ledger
pages by cursor exactly while movements arrive, and timestamps are all written one way (``Z``)."""

from __future__ import annotations

from conftest import EPC_A, EPC_B, Cloud, batch, movement
from test_api_docs import _timestamps

EPC_C = "3034257BF400B78000000C0C"


async def _register(cloud: Cloud) -> None:
    admin = {"Authorization": f"Bearer {cloud.admin}"}
    product = {"sku": "MILK", "name": "Milk"}
    assert (await cloud.client.put("/api/v1/products/MILK", json=product, headers=admin)).status_code == 200
    lot = {"sku": "MILK", "lot_code": "L7", "expiry": "2025-06-01"}
    assert (await cloud.client.put("/api/v1/lots/MILK/L7", json=lot, headers=admin)).status_code == 200
    item = {"epc": EPC_A, "sku": "MILK", "lot_code": "L7"}
    response = await cloud.client.put(f"/api/v1/items/{EPC_A}", json=item, headers=admin)
    assert response.status_code == 200, response.text


async def test_stock_rows_carry_sku_and_lot_and_by_location_follows_location(cloud: Cloud) -> None:
    await _register(cloud)
    events = [
        (1, movement(0, EPC_A, "backroom")),
        (2, movement(1, EPC_B, "shelf")),
        (3, movement(2, EPC_C, "shelf")),
    ]
    assert (await cloud.post(batch("edge-1", events))).status_code == 200
    stock = await cloud.get_ok("/api/v1/stock")
    rows = {i["epc"]: (i["sku"], i["lot_code"], i["location"]) for i in stock["items"]}
    assert rows == {
        EPC_A: ("MILK", "L7", "backroom"),
        EPC_B: (None, None, "shelf"),
        EPC_C: (None, None, "shelf"),
    }
    assert stock["by_location"] == {"backroom": 1, "shelf": 2}
    shelf = await cloud.get_ok("/api/v1/stock", location="shelf")
    assert (shelf["total"], shelf["by_location"]) == (2, {"shelf": 2})
    milk = await cloud.get_ok("/api/v1/stock", product="MILK", lot="L7")
    assert ([i["epc"] for i in milk["items"]], milk["by_location"]) == ([EPC_A], {"backroom": 1})


async def test_movement_cursor_pages_exactly_while_movements_arrive(cloud: Cloud) -> None:
    epcs = [f"3034257BF400B78000{n:06X}" for n in range(7)]
    first = [(i + 1, movement(10 * i, epc, "backroom")) for i, epc in enumerate(epcs)]
    assert (await cloud.post(batch("edge-1", first))).status_code == 200
    seen: list[int] = []
    page = await cloud.get_ok("/api/v1/movements", limit=3)
    seq = len(first)
    while True:
        seen += [m["id"] for m in page["items"]]
        # Newer movements arrive between pages: an offset would now return rows already seen.
        seq += 1
        newer = movement(1000 + seq, epcs[0], "shelf", frm="backroom")
        assert (await cloud.post(batch("edge-1", [(seq, newer)]))).status_code == 200
        if page["next"] is None:
            break
        page = await cloud.get_ok("/api/v1/movements", limit=3, cursor=page["next"])
    assert len(seen) == len(set(seen)) == len(first)
    ledger = await cloud.get_ok("/api/v1/movements", limit=1000)
    original = [m["id"] for m in ledger["items"] if m["to_location"] == "backroom"]
    assert seen == original  # newest first, none skipped, none twice
    assert ledger["next"] is None and ledger["total"] == seq
    stamps = _timestamps(ledger) + _timestamps(await cloud.get_ok("/api/v1/stock"))
    assert stamps and all(s.endswith("Z") for s in stamps), [s for s in stamps if not s.endswith("Z")]
    # An offset page still works and hands over a cursor to continue from.
    by_offset = await cloud.get_ok("/api/v1/movements", limit=2, offset=2)
    after = await cloud.get_ok("/api/v1/movements", limit=2, cursor=by_offset["next"])
    assert [m["id"] for m in after["items"]] == [m["id"] for m in ledger["items"][4:6]]


async def test_a_foreign_cursor_is_a_clear_422(cloud: Cloud) -> None:
    for cursor in ("not-a-cursor", "WzEsMl0", "W10"):
        response = await cloud.get("/api/v1/movements", cursor=cursor)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_cursor"
