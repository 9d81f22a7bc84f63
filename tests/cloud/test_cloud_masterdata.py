"""Master data: import/export (CSV, JSON, CLI), validation naming row and column, read and write API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Cloud, at, settle_lots

from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.masterdata.records import MasterDataError
from shelfsense.cli import main as cli_main

PRODUCTS_CSV = """sku,gtin,name,shelf_life_days,storage_temp_min_c,storage_temp_max_c
MILK-1L,4006381333931,Milk 1 l,12,2,6
YOG-150,,Yoghurt,,,
"""
LOCATIONS_JSON = [
    {
        "site_id": "site-1",
        "location_id": "cold-1",
        "kind": "cold_room",
        "parent_id": "hall",
        "rfid_coverage": True,
    },
    {"site_id": "site-1", "location_id": "hall", "kind": "zone"},  # parent after child: order-free
    {
        "site_id": "site-1",
        "location_id": "shelf-a",
        "kind": "shelf",
        "parent_id": "cold-1",
        "rfid_coverage": True,
    },
    {"site_id": "site-1", "location_id": "dock-1", "kind": "dock", "parent_id": "hall"},
]
LOTS_CSV = "sku,lot_code,expiry\nMILK-1L,L001,2025-02-01\nMILK-1L,L002,\n"
ITEMS_CSV = "epc,sku,lot_code\n3034257bf400b7800004cb2f,MILK-1L,L001\n3034257BF400B7800004CB30,YOG-150,\n"


def write(tmp_path: Path, name: str, content: str | list[Any]) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


async def cli(db_url: str, *args: str) -> int:
    """The real CLI (which runs its own event loop) in a worker thread."""
    return await asyncio.to_thread(cli_main, ["cloud", *args, "--db", db_url])


async def import_all(db_url: str, tmp_path: Path) -> None:
    assert await cli(db_url, "import", str(write(tmp_path, "p.csv", PRODUCTS_CSV)), "--kind", "products") == 0
    assert (
        await cli(db_url, "import", str(write(tmp_path, "l.json", LOCATIONS_JSON)), "--kind", "locations")
        == 0
    )
    assert await cli(db_url, "import", str(write(tmp_path, "lots.csv", LOTS_CSV)), "--kind", "lots") == 0
    assert await cli(db_url, "import", str(write(tmp_path, "i.csv", ITEMS_CSV)), "--kind", "items") == 0


async def test_cli_import_then_read_api_and_export_round_trip(
    cloud: Cloud, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await import_all(db_url, tmp_path)
    product = await cloud.get_ok("/api/v1/products/MILK-1L")
    assert product == {
        "sku": "MILK-1L",
        "gtin": "04006381333931",  # GTIN-13 stored as 14 digits
        "name": "Milk 1 l",
        "shelf_life_days": 12,
        "storage_temp_min_c": 2.0,
        "storage_temp_max_c": 6.0,
        "shelf_life_model": None,  # shelf-life model columns: revision 0005 (lots)
        "activation_energy_kj": None,
        "q10": None,
        "reference_temp_c": None,
    }
    assert (await cloud.get_ok("/api/v1/products", gtin="4006381333931"))["total"] == 1
    assert [p["sku"] for p in (await cloud.get_ok("/api/v1/products", q="ogh"))["items"]] == ["YOG-150"]
    children = await cloud.get_ok("/api/v1/locations", site="site-1", parent="hall")
    assert [c["location_id"] for c in children["items"]] == ["cold-1", "dock-1"]
    assert (await cloud.get_ok("/api/v1/locations/site-1/shelf-a"))["parent_id"] == "cold-1"
    await settle_lots(cloud.engine)
    assert [
        lot["lot_code"] for lot in (await cloud.get_ok("/api/v1/lots", expires_before="2025-03-01"))["items"]
    ] == ["L001"]
    items = (await cloud.get_ok("/api/v1/items", sku="MILK-1L"))["items"]
    assert items == [{"epc": "3034257BF400B7800004CB2F", "sku": "MILK-1L", "lot_code": "L001"}]
    assert (await cloud.get("/api/v1/products/NOPE")).status_code == 404

    # Stock by product and lot joins the ledger with the registered items.
    moves = [
        {"seq": n + 1, "event": {"kind": "stock_movement", "epc": epc, "to_location": "shelf-a", "at": at(n)}}
        for n, epc in enumerate(["3034257BF400B7800004CB2F", "3034257BF400B7800004CB30", "AAAA0000"])
    ]
    body = {"v": 1, "edge_id": "edge-1", "created_at": at(0), "events": moves}
    assert (await cloud.post(body)).status_code == 200
    milk = await cloud.get_ok("/api/v1/stock", product="MILK-1L")
    assert ([i["epc"] for i in milk["items"]], milk["by_location"]) == (
        ["3034257BF400B7800004CB2F"],
        {"shelf-a": 1},
    )
    assert (await cloud.get_ok("/api/v1/stock", product="MILK-1L", lot="L002"))["total"] == 0
    assert (await cloud.get_ok("/api/v1/stock"))["total"] == 3

    # Export, import into a fresh database, export again: identical files (CSV and JSON).
    for fmt in ("csv", "json"):
        first, second = tmp_path / f"a-{fmt}", tmp_path / f"b-{fmt}"
        assert await cli(db_url, "export", str(first), "--format", fmt) == 0
        fresh = f"sqlite:///{tmp_path / f'fresh-{fmt}.db'}"
        for kind in masterdata_records.KINDS:
            assert await cli(fresh, "import", str(first / f"{kind}.{fmt}"), "--kind", kind) == 0
        assert await cli(fresh, "export", str(second), "--format", fmt) == 0
        for kind in masterdata_records.KINDS:
            assert (first / f"{kind}.{fmt}").read_text() == (second / f"{kind}.{fmt}").read_text()
    assert "MILK-1L" in (tmp_path / "a-csv" / "items.csv").read_text()


async def test_invalid_file_names_row_and_column_and_writes_nothing(cloud: Cloud, tmp_path: Path) -> None:
    bad = (
        "sku,gtin,name,shelf_life_days,colour\n"
        "OK-1,,fine,3,\n"  # valid, but must not be written either
        "BAD-1,4006381333932,wrong check digit,5,\n"
        "BAD-2,,,-1,red\n"
        "OK-1,,duplicate,,\n"
    )
    with pytest.raises(MasterDataError) as caught:
        await md.import_text(cloud.engine, "products", bad, "csv")
    messages = [str(p) for p in caught.value.problems]
    assert "row 2, column 'gtin': Value error, GTIN check digit is wrong" in messages
    assert any(m.startswith("row 3, column 'shelf_life_days'") for m in messages)
    assert "row 3, column 'colour': unknown column" in messages
    assert any(m.startswith("row 4, column 'sku': duplicate key") for m in messages)
    assert (await cloud.get_ok("/api/v1/products"))["total"] == 0

    # The CLI reports the same and exits non-zero.
    assert (
        await cli(cloud_db(cloud), "import", str(write(tmp_path, "bad.csv", bad)), "--kind", "products") == 1
    )


async def test_references_are_checked_against_file_and_database(cloud: Cloud) -> None:
    await md.import_text(cloud.engine, "products", PRODUCTS_CSV, "csv")
    with pytest.raises(MasterDataError, match=r"row 2, column 'sku': unknown product 'NOPE'"):
        await md.import_text(cloud.engine, "lots", "sku,lot_code\nMILK-1L,L9\nNOPE,L1\n", "csv")
    with pytest.raises(MasterDataError, match=r"row 1, column 'lot_code': unknown lot 'L9'"):
        await md.import_text(cloud.engine, "items", "epc,sku,lot_code\nAABBCCDD,MILK-1L,L9\n", "csv")
    cycle = [
        {"site_id": "s", "location_id": "a", "kind": "zone", "parent_id": "b"},
        {"site_id": "s", "location_id": "b", "kind": "zone", "parent_id": "a"},
    ]
    with pytest.raises(MasterDataError, match="own ancestor"):
        await md.import_text(cloud.engine, "locations", json.dumps(cycle), "json")
    with pytest.raises(MasterDataError, match=r"row 1, column 'parent_id': unknown location 'ghost'"):
        await md.import_text(
            cloud.engine,
            "locations",
            '[{"site_id":"s","location_id":"a","kind":"zone","parent_id":"ghost"}]',
            "json",
        )
    with pytest.raises(MasterDataError, match=r"row 1, column 'gtin': GTIN 04006381333931 already belongs"):
        await md.import_text(cloud.engine, "products", "sku,gtin\nOTHER,4006381333931\n", "csv")
    with pytest.raises(MasterDataError, match="not valid JSON"):
        await md.import_text(cloud.engine, "items", "{", "json")
    assert (await cloud.get_ok("/api/v1/lots"))["total"] == 0
    assert (await cloud.get_ok("/api/v1/locations"))["total"] == 0


async def test_write_api_is_admin_only(cloud: Cloud) -> None:
    admin = {"Authorization": f"Bearer {cloud.admin}"}
    viewer = {"Authorization": f"Bearer {cloud.viewer}"}
    body = {"sku": "CHEESE", "name": "Cheese", "storage_temp_min_c": 2, "storage_temp_max_c": 8}
    assert (await cloud.client.put("/api/v1/products/CHEESE", json=body, headers=viewer)).status_code == 403
    put = await cloud.client.put("/api/v1/products/CHEESE", json=body, headers=admin)
    assert put.status_code == 200, put.text
    mismatch = await cloud.client.put("/api/v1/products/OTHER", json=body, headers=admin)
    assert (mismatch.status_code, mismatch.json()["code"]) == (422, "key_mismatch")
    lot = {"sku": "CHEESE", "lot_code": "C1", "expiry": "2025-06-01"}
    assert (await cloud.client.put("/api/v1/lots/CHEESE/C1", json=lot, headers=admin)).status_code == 200
    in_use = await cloud.client.delete("/api/v1/products/CHEESE", headers=admin)
    assert (in_use.status_code, in_use.json()["code"]) == (409, "in_use")
    assert (await cloud.client.delete("/api/v1/lots/CHEESE/C1", headers=admin)).status_code == 204
    assert (await cloud.client.delete("/api/v1/products/CHEESE", headers=admin)).status_code == 204
    assert (await cloud.client.delete("/api/v1/products/CHEESE", headers=admin)).status_code == 404

    bad_csv = "sku,gtin\nX,12\n"
    refused = await cloud.client.post(
        "/api/v1/master/products/import", content=bad_csv, headers={**admin, "Content-Type": "text/csv"}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"row": 1, "column": "gtin", "msg": "Value error, a GTIN has 8, 12, 13 or 14 digits"}
    ]
    imported = await cloud.client.post(
        "/api/v1/master/products/import", content=PRODUCTS_CSV, headers={**admin, "Content-Type": "text/csv"}
    )
    assert imported.json() == {"imported": 2}
    exported = await cloud.client.get(
        "/api/v1/master/products/export", params={"format": "json"}, headers=admin
    )
    assert [p["sku"] for p in exported.json()["items"]] == ["MILK-1L", "YOG-150"]


def cloud_db(cloud: Cloud) -> str:
    return cloud.engine.url.render_as_string(hide_password=False)


def test_gtin_check_digit() -> None:
    assert masterdata_records.gtin_check_digit_ok("4006381333931")
    assert masterdata_records.gtin_check_digit_ok("96385074")  # GTIN-8
    assert not masterdata_records.gtin_check_digit_ok("4006381333932")
