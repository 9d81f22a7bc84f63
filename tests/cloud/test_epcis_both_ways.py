"""EPCIS 2.0 both ways (issue 14 item 6): SGLN locations, the standard query parameters, capture
validated against GS1's JSON Schema, and the round trip export -> capture into a fresh cloud.

References no one here wrote: GS1's EPCIS 2.0 JSON Schema and three of GS1's own example documents,
pinned in tests/data/epcis/ (source URL and commit in its README.md); EPC URIs per GS1 TDS 2.x
(SGTIN-96 / SSCC-96 / SGLN; filter values §10.1).
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import T0, Cloud, at, batch, movement, reading
from jsonschema import Draft7Validator

from cloud.admin import create_user_async
from cloud.epcis.schema import schema
from cloud.epcis.uris import epc_hex_candidates, epc_uri
from cloud.main import create_app
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from devices.epc import encode_sgtin96, encode_tag_uri
from shelfsense.config import CloudSettings, Settings

DATA = Path(__file__).resolve().parents[1] / "data" / "epcis"
PINNED = json.loads((DATA / "EPCIS-JSON-Schema.json").read_text())
OFFICIAL = Draft7Validator(PINNED)

E1, E2, E3 = (encode_sgtin96("0614141", "112345", n) for n in (1, 2, 3))
E4 = encode_tag_uri("urn:epc:tag:sgtin-96:3.0614141.112345.4")  # filter 3, registered
STRANGER = encode_sgtin96("0614141", "112345", 99)  # never registered
# GLNs with GS1 check digits: 0614141 00001 2 (dock), 0614141 00002 9 (cold room, extension 1)
LOCATIONS = [
    {"site_id": "site-1", "location_id": "dock", "kind": "dock", "gln": "0614141000012", "gcp_length": 7},
    {
        "site_id": "site-1",
        "location_id": "cold-1",
        "kind": "cold_room",
        "gln": "0614141000029",
        "gcp_length": 7,
        "gln_extension": "1",
        "rfid_coverage": True,
    },
    {"site_id": "site-1", "location_id": "shelf-a", "kind": "shelf"},  # no GLN
]
DOCK_SGLN, COLD_SGLN = "urn:epc:id:sgln:0614141.00001.0", "urn:epc:id:sgln:0614141.00002.1"


async def master_data(cloud_engine: Any) -> None:
    await md.import_text(cloud_engine, "locations", json.dumps(LOCATIONS), "json")
    await md.import_text(
        cloud_engine,
        "products",
        "sku,storage_temp_min_c,storage_temp_max_c,shelf_life_days\nMILK,2,8,10\n",
        "csv",
    )
    await md.import_text(cloud_engine, "lots", "sku,lot_code,expiry\nMILK,L1,2025-01-10\n", "csv")
    items = "".join(f"{e},MILK,L1\n" for e in (E1, E2, E3, E4))
    await md.import_text(cloud_engine, "items", "epc,sku,lot_code\n" + items, "csv")


def observation_at(seconds: float, epc: str, location: str) -> dict[str, Any]:
    return {
        "kind": "tag_observation",
        "epc": epc,
        "reader": "uhf-cold",
        "antenna": 1,
        "first_seen": at(seconds),
        "last_seen": at(seconds + 5),
        "count": 4,
        "location": location,
    }


async def load_history(cloud: Cloud) -> None:
    """Receipts, a move into the cold room, a shipment, a stranger, counts and zone readings."""
    events: list[dict[str, Any]] = [
        movement(0, E1, "dock"),
        movement(0, E2, "dock"),
        movement(0, E3, "shelf-a"),
        movement(0, E4, "dock"),
        movement(0, STRANGER, "dock"),
        movement(600, E1, "cold-1", "dock"),
        movement(600, E2, "cold-1", "dock"),
        movement(900, E3, None, "shelf-a"),  # shipped
        observation_at(1200, E1, "cold-1"),
    ]
    for minute in range(0, 121, 5):  # the cold room warms above 8 degC for a while
        value = 4.0 if not 40 <= minute <= 70 else 9.5
        events.append(reading(minute * 60, value, zone="cold-1"))
        events.append({**reading(minute * 60 + 1, 3.0, zone="dock"), "sensor_id": "probe-dock"})
    response = await cloud.post(batch("edge-1", list(enumerate(events, start=1))))
    assert response.status_code == 200, response.text


def as_capture(query_doc: dict[str, Any]) -> dict[str, Any]:
    """A partner turning our EPCISQueryDocument into an EPCISDocument to capture."""
    return {
        "@context": query_doc["@context"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": query_doc["creationDate"],
        "epcisBody": {"eventList": query_doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]},
    }


def events_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return result


def test_shipped_schema_is_gs1s_and_accepts_gs1s_examples() -> None:
    assert schema() == PINNED  # the runtime copy is the pinned official one, unmodified
    for name in (
        "Example_9.6.1-ObjectEvent.jsonld",
        "Example_9.6.3-AggregationEvent.jsonld",
        "SensorDataExample1.jsonld",
    ):
        assert list(OFFICIAL.iter_errors(json.loads((DATA / name).read_text()))) == [], name


def test_epc_uris_name_the_hex_we_store() -> None:
    assert epc_uri(E1) == "urn:epc:id:sgtin:0614141.112345.1"
    assert epc_hex_candidates(epc_uri(E1))[0] == E1  # TDS default filter 1 first
    assert E4 in epc_hex_candidates(epc_uri(E4))  # any filter value
    assert epc_hex_candidates("urn:epc:tag:sgtin-96:3.0614141.112345.4") == [E4]
    assert epc_hex_candidates(E1.lower()) == [E1]
    assert epc_hex_candidates("urn:epc:class:lgtin:4012345.012345.998877") == []
    assert epc_hex_candidates("urn:epc:id:sgtin:0614141.112345.x") == []


@pytest.fixture
async def operator(cloud: Cloud) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_user_async(cloud.engine, 'otto', 'operator')}"}


async def test_export_sgln_and_standard_query_parameters(cloud: Cloud) -> None:
    await master_data(cloud.engine)
    await load_history(cloud)
    doc = await cloud.get_ok("/api/v1/epcis/events", limit=5000)
    assert list(OFFICIAL.iter_errors(doc)) == []  # valid per GS1's schema
    events = events_of(doc)
    moved_in = [e for e in events if e["bizStep"] == "storing" and e["epcList"] == [epc_uri(E1)]]
    assert moved_in[0]["readPoint"] == {"id": COLD_SGLN} and moved_in[0]["bizLocation"] == {"id": COLD_SGLN}
    shelf = [e for e in events if e["epcList"] == [epc_uri(E3)] and e["bizStep"] == "receiving"]
    assert shelf[0]["bizLocation"] == {"id": "urn:shelfsense:loc:site-1:shelf-a"}  # no GLN
    sensor_events = [e for e in events if e["bizStep"] == "sensor_reporting"]
    assert {e["bizLocation"]["id"] for e in sensor_events} == {COLD_SGLN, DOCK_SGLN}
    assert all(e["epcList"] == [] for e in sensor_events)

    async def query(**params: Any) -> list[dict[str, Any]]:
        return events_of(await cloud.get_ok("/api/v1/epcis/events", **params))

    by_uri = await query(epc=epc_uri(E4))
    assert by_uri and all(e["epcList"] == [epc_uri(E4)] for e in by_uri)
    assert await query(epc=E4) == by_uri  # hex still works
    assert {e["bizStep"] for e in await query(EQ_bizStep="shipping")} == {"shipping"}
    window = await query(GE_eventTime=at(600), LT_eventTime=at(601))
    assert sorted(e["bizStep"] for e in window) == ["sensor_reporting", "storing", "storing"]
    assert all(e["eventTime"].startswith("2025-01-01T12:10:00") for e in window)  # cold-1's 600 s reading
    both = await query(MATCH_epc=f"{epc_uri(E1)},{epc_uri(E2)}", EQ_bizLocation=COLD_SGLN)
    assert {tuple(e["epcList"]) for e in both} == {(epc_uri(E1),), (epc_uri(E2),)}
    assert await query(eventType="AggregationEvent") == []
    assert {e["type"] for e in await query(eventType="ObjectEvent", limit=5)} == {"ObjectEvent"}
    for bad in ({"eventType": "Nonsense"}, {"MATCH_epc": "not-an-epc"}, {"GE_eventTime": "yesterday"}):
        response = await cloud.get("/api/v1/epcis/events", **bad)
        assert response.status_code == 422, (bad, response.text)


async def test_capture_gs1_examples_and_refusals(cloud: Cloud, operator: dict[str, str]) -> None:
    # GS1's Example 9.6.3 (AggregationEvent at bizLocation 0614141.00888.0) and sensor example 1
    # (readPoint 4012345.00005.0): register those places by GLN.
    await md.import_text(
        cloud.engine,
        "locations",
        json.dumps(
            [
                {
                    "site_id": "site-2",
                    "location_id": "gs1-888",
                    "kind": "zone",
                    "gln": "0614141008889",
                    "gcp_length": 7,
                },
                {
                    "site_id": "site-2",
                    "location_id": "gs1-5",
                    "kind": "zone",
                    "gln": "4012345000054",
                    "gcp_length": 7,
                },
            ]
        ),
        "json",
    )
    aggregation = (DATA / "Example_9.6.3-AggregationEvent.jsonld").read_bytes()
    response = await cloud.client.post("/api/v1/epcis/capture", content=aggregation, headers=operator)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["events"], result["movements"]) == (1, 3)  # the SSCC pallet and two cases
    assert any("quantities" in s for s in result["skipped"])  # childQuantityList: not tracked
    stock = await cloud.get_ok("/api/v1/stock", site="site-2")
    children = {
        h
        for uri in ("urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2018")
        for h in epc_hex_candidates(uri)[:1]
    }
    sscc = epc_hex_candidates("urn:epc:id:sscc:0614141.1234567890")[0]
    assert {(i["epc"], i["location"]) for i in stock["items"]} == {(e, "gs1-888") for e in children | {sscc}}
    again = await cloud.client.post("/api/v1/epcis/capture", content=aggregation, headers=operator)
    assert (again.json()["events"], again.json()["duplicates"]) == (0, 1)  # idempotent

    sensors = (DATA / "SensorDataExample1.jsonld").read_bytes()
    result = (await cloud.client.post("/api/v1/epcis/capture", content=sensors, headers=operator)).json()
    assert result["readings"] >= 2  # the Temperature reports; AbsoluteHumidity, Speed ... skipped
    temps = await cloud.get_ok("/api/v1/sensors/urn:epc:id:giai:4000001.111/readings", quantity="temperature")
    assert {(r["value"], r["zone"]) for r in temps["items"]} >= {(26.0, "gs1-5"), (26.1, "gs1-5")}

    viewer = await cloud.client.post(
        "/api/v1/epcis/capture", content=aggregation, headers={"Authorization": f"Bearer {cloud.viewer}"}
    )
    assert viewer.status_code == 403
    assert (await cloud.client.post("/api/v1/epcis/capture", content=aggregation)).status_code == 401
    doc = json.loads(aggregation)
    doc["epcisBody"]["eventList"][0]["action"] = "JUMP"
    refused = await cloud.client.post("/api/v1/epcis/capture", json=doc, headers=operator)
    assert refused.status_code == 400 and any("JUMP" in p for p in refused.json()["problems"])
    doc["epcisBody"]["eventList"][0].update(
        action="ADD", eventID="urn:uuid:elsewhere", bizLocation={"id": "urn:epc:id:sgln:0614141.99999.0"}
    )
    unknown = await cloud.client.post("/api/v1/epcis/capture", json=doc, headers=operator)
    assert unknown.status_code == 400 and "not a known location" in unknown.text
    doc["epcisBody"]["eventList"][0].update(
        bizLocation={"id": "urn:epc:id:sgln:0614141.00888.0"}, eventTime="1970-01-01T00:00:00Z"
    )
    ancient = await cloud.client.post("/api/v1/epcis/capture", json=doc, headers=operator)
    assert ancient.status_code == 400 and "implausible" in ancient.text
    for body in (b"{", b"[]", b'{"type": "EPCISDocument"}', b"[" * 50_000):
        hostile = await cloud.client.post("/api/v1/epcis/capture", content=body, headers=operator)
        assert hostile.status_code == 400, (body[:20], hostile.text)
    assert (await cloud.get_ok("/api/v1/stock", site="site-2"))["total"] == 3  # a sighting moves nothing


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any, dict[str, str]]]:
    """A second, empty cloud (SQLite) with the same master data."""
    app = create_app(Settings(cloud=CloudSettings(db_url=f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")))
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        await master_data(engine)
        token = await create_user_async(engine, "otto", "operator")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fresh.test") as client:
            yield client, engine, {"Authorization": f"Bearer {token}"}


async def test_round_trip_gives_the_same_stock_and_lot_history(
    cloud: Cloud, fresh: tuple[httpx.AsyncClient, Any, dict[str, str]]
) -> None:
    await master_data(cloud.engine)
    await load_history(cloud)
    exported = await cloud.get_ok("/api/v1/epcis/events", limit=5000)
    client, _engine, operator = fresh
    response = await client.post("/api/v1/epcis/capture", json=as_capture(exported), headers=operator)
    assert response.status_code == 200, response.text
    assert response.json()["duplicates"] == 0

    async def fresh_get(path: str, **params: Any) -> Any:
        answer = await client.get(path, params=params, headers=operator)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stock(page: dict[str, Any]) -> set[tuple[Any, ...]]:
        return {(i["site_id"], i["epc"], i["location"], i["present"], i["updated_at"]) for i in page["items"]}

    source = await cloud.get_ok("/api/v1/stock", include_gone="true", limit=1000)
    target = await fresh_get("/api/v1/stock", include_gone="true", limit=1000)
    assert stock(target) == stock(source) and len(stock(source)) == 5

    window = {"since": at(0), "until": (T0 + timedelta(hours=3)).isoformat()}
    lot_source = await cloud.get_ok("/api/v1/lots/MILK:L1", **window)
    lot_target = await fresh_get("/api/v1/lots/MILK:L1", **window)
    assert lot_source["excursions"]["time_above_max_s"] > 0  # there is something to compare
    for key in ("stays", "excursions", "mkt_c"):
        assert lot_target[key] == lot_source[key], key

    def moves(page: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(
            ((m["epc"], m["from_location"], m["to_location"], m["at"]) for m in page["items"]), key=str
        )

    assert moves(await fresh_get("/api/v1/movements", limit=1000)) == moves(
        await cloud.get_ok("/api/v1/movements", limit=1000)
    )
    again = await client.post("/api/v1/epcis/capture", json=as_capture(exported), headers=operator)
    assert again.json()["events"] == 0 and again.json()["movements"] == 0  # captured once


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"gln": "0614141000013", "gcp_length": 7}, "check digit"),  # GS1 check digit is 2
        ({"gln": "0614141000012"}, "go together"),
        ({"gcp_length": 7}, "go together"),
        ({"gln": "0614141000012", "gcp_length": 13}, "less than or equal to 12"),
        ({"gln_extension": "1"}, "needs a gln"),
    ],
)
def test_location_gln_is_validated(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        masterdata_records.LocationRecord.model_validate(
            {"site_id": "s", "location_id": "l", "kind": "zone", **extra}
        )


def test_location_sgln_defaults_the_extension() -> None:
    record = masterdata_records.LocationRecord.model_validate(
        {"site_id": "s", "location_id": "l", "kind": "zone", "gln": "0614141000012", "gcp_length": 7}
    )
    assert record.gln_extension == "0"


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))] or [path]
    return [path]


async def test_hostile_captures_get_clear_errors_never_a_500(cloud: Cloud, operator: dict[str, str]) -> None:
    """GS1's examples with one value at a time replaced by something absurd (seeded, repeatable)."""
    await md.import_text(cloud.engine, "locations", json.dumps(LOCATIONS), "json")
    rng = random.Random(14)
    absurd: list[Any] = [None, -1, 1e308, "", [], {}, "x" * 3000, "9999-12-31T23:59:59Z", True]
    absurd += ["2025-13-45T00:00Z", "urn:epc:id:sgln:0614141.00001.0", "urn:epc:id:sgtin:0614141.112345.1"]
    absurd.append({"id": None})
    statuses = set()
    for name in (
        "Example_9.6.3-AggregationEvent.jsonld",
        "SensorDataExample1.jsonld",
        "Example_9.6.1-ObjectEvent.jsonld",
    ):
        original = json.loads((DATA / name).read_text())
        paths = _leaves(original)
        for _ in range(40):
            doc = json.loads(json.dumps(original))
            path = rng.choice(paths)
            target = doc
            for key in path[:-1]:
                target = target[key]
            if path:
                target[path[-1]] = rng.choice(absurd)
            response = await cloud.client.post("/api/v1/epcis/capture", json=doc, headers=operator)
            assert response.status_code in (200, 400, 403), (path, response.text)
            assert response.status_code == 200 or response.json()["code"] in ("invalid_epcis", "invalid_body")
            statuses.add(response.status_code)
    assert 400 in statuses
