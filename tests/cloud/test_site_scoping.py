"""Users see and act on their sites only: one rule per operation of the live app's OpenAPI.

Two sites hold data (alerts, readings, stock, stocktakes, proposals, forecasts, locations, edges);
users of ``site-a`` (viewer, operator, admin) call every operation aimed at ``site-b``. Reads never
answer with anything of site-b (its ids are markers grepped for in every body, except those the
request itself named and an error may echo); writes to site-b's
objects are refused (403/404) and leave them as they were. A route added without a rule here fails
:func:`test_every_operation_has_a_site_rule`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import EPC_A, EPC_B, T0, batch, movement, observation, passage, reading
from sqlalchemy import select

from cloud.admin import create_edge_async, create_user_async
from cloud.alerts import tables as alerts_db
from cloud.core import db
from cloud.main import create_app
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.replenish import tables as rt
from cloud.stocktake import tables as stocktake_db
from shelfsense.config import CloudSettings, Settings, ZoneLimits

B_MARKERS = ("site-b", "edge-b", "zone-b", "probe-b", EPC_B)


@dataclass(frozen=True)
class Call:
    path: str
    user: str = "viewer"  # a user of site-a: viewer, operator or admin; "" = no token
    method: str = "GET"
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Rule:
    """``filtered``: answers (2xx, or 404/422 for a named foreign site) without site-b data;
    ``refused``: 403 or 404; ``public``: no user needed, no site data; ``edge``: edges only;
    ``sgtin``: the EPC a GTIN + serial encodes is answered, but not as seen on site-b."""

    kind: str
    calls: tuple[Call, ...]
    own: str | None = None  # a filtered read must show this marker of site-a (it is not just empty)


def filtered(*calls: Call, own: str | None = None) -> Rule:
    return Rule("filtered", calls, own)


def refused(*calls: Call) -> Rule:
    return Rule("refused", calls)


def on_both(path: str, params: dict[str, Any] | None = None, **kw: Any) -> tuple[Call, Call]:
    """The call as is and aimed at site-b with ``site=site-b``."""
    params = params or {}
    return Call(path, params=params, **kw), Call(path, params={**params, "site": "site-b"}, **kw)


EPCIS_INTO_SITE_B = {
    "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
    "type": "EPCISDocument",
    "schemaVersion": "2.0",
    "creationDate": "2025-01-01T00:00:00Z",
    "epcisBody": {
        "eventList": [
            {
                "type": "ObjectEvent",
                "eventID": "ni:///sha-256;site-b-capture?ver=CBV2.0",
                "eventTime": "2025-01-01T00:00:00Z",
                "eventTimeZoneOffset": "+00:00",
                "epcList": ["urn:epc:id:sgtin:0614141.112345.400"],
                "action": "ADD",
                "bizStep": "receiving",
                "bizLocation": {"id": "urn:shelfsense:loc:site-b:shelf"},
            }
        ]
    },
}
WHATIF_SITE_B = {"name": "peek", "site_id": "site-b", "simulation": {"days": 5, "runs": 2}}


def rules(ids: dict[str, Any]) -> dict[tuple[str, str], Rule]:
    """One rule per operation; ``ids`` are site-b's objects."""
    alert, proposal, run, disc = ids["alert_b"], ids["proposal_b"], ids["run_b"], ids["discrepancy_b"]
    return {
        ("GET", "/healthz"): Rule("public", (Call("/healthz", user=""),)),
        ("GET", "/readyz"): Rule("public", (Call("/readyz", user=""),)),
        # Prometheus scrapes without a user; its per-edge series (ingest lag) name every edge, by
        # design: /metrics belongs on the monitoring network, not the public one (docs/deploy.md).
        ("GET", "/metrics"): Rule("scrape", (Call("/metrics", user=""),)),
        ("POST", "/api/v1/edges/{edge_id}/batches"): Rule(
            "edge", (Call("/api/v1/edges/edge-b/batches", user="admin", method="POST", body={}),)
        ),
        ("GET", "/api/v1/stock"): filtered(*on_both("/api/v1/stock"), own="site-a"),
        ("GET", "/api/v1/movements"): filtered(*on_both("/api/v1/movements"), own="site-a"),
        ("GET", "/api/v1/passages"): filtered(*on_both("/api/v1/passages")),
        # Capture into a site-b location: refused (403) to users of site-a only.
        ("POST", "/api/v1/epcis/capture"): refused(
            Call("/api/v1/epcis/capture", "operator", "POST", body=EPCIS_INTO_SITE_B)
        ),
        ("GET", "/api/v1/items/{epc}"): filtered(
            Call(f"/api/v1/items/{EPC_B}"), Call(f"/api/v1/items/{EPC_A}")
        ),
        ("PUT", "/api/v1/items/{epc}"): refused(
            Call(f"/api/v1/items/{EPC_B}", "admin", "PUT", body={"epc": EPC_B, "sku": "sku-1"})
        ),
        ("DELETE", "/api/v1/items/{epc}"): refused(Call(f"/api/v1/items/{EPC_A}", "admin", "DELETE")),
        ("GET", "/api/v1/sensors"): filtered(*on_both("/api/v1/sensors"), own="probe-a"),
        ("GET", "/api/v1/sensors/{sensor_id}/rollups"): filtered(
            *on_both("/api/v1/sensors/probe-b/rollups"), Call("/api/v1/sensors/probe-a/rollups")
        ),
        ("GET", "/api/v1/sensors/{sensor_id}/readings"): filtered(
            *on_both("/api/v1/sensors/probe-b/readings"), Call("/api/v1/sensors/probe-a/readings")
        ),
        ("GET", "/api/v1/alerts"): filtered(
            *on_both("/api/v1/alerts", params={"status": "all"}), own="zone-a"
        ),
        ("GET", "/api/v1/alerts/{alert_id}"): refused(Call(f"/api/v1/alerts/{alert}")),
        ("GET", "/api/v1/alerts/{alert_id}/deliveries"): refused(Call(f"/api/v1/alerts/{alert}/deliveries")),
        ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): refused(
            Call(f"/api/v1/alerts/{alert}/acknowledge", "operator", "POST", body={"comment": "mine now"})
        ),
        ("POST", "/api/v1/alerts/{alert_id}/resolve"): refused(
            Call(f"/api/v1/alerts/{alert}/resolve", "operator", "POST", body={"reason": "faulty probe"})
        ),
        ("GET", "/api/v1/edges"): filtered(*on_both("/api/v1/edges"), own="edge-a"),
        ("POST", "/api/v1/edges"): refused(
            Call("/api/v1/edges", "admin", "POST", body={"site_id": "site-b", "name": "edge-b2"})
        ),
        ("DELETE", "/api/v1/edges/{edge_id}/tokens"): refused(
            Call("/api/v1/edges/edge-b/tokens", "admin", "DELETE")
        ),
        ("GET", "/api/v1/summary"): filtered(*on_both("/api/v1/summary"), own="edge-a"),
        ("GET", "/api/v1/lots"): filtered(*on_both("/api/v1/lots")),
        ("GET", "/api/v1/fefo"): filtered(*on_both("/api/v1/fefo")),
        ("GET", "/api/v1/lots/{lot_id}/report"): refused(Call("/api/v1/lots/sku-1:lot-1/report")),
        ("GET", "/api/v1/lots/{lot_id}"): refused(Call("/api/v1/lots/sku-1:lot-1")),
        ("GET", "/api/v1/zones/{zone}/mkt"): filtered(
            Call("/api/v1/zones/zone-b/mkt"), Call("/api/v1/zones/zone-b/mkt", params={"site": "site-b"})
        ),
        ("GET", "/api/v1/products"): filtered(Call("/api/v1/products"), own="sku-1"),  # master data of all
        ("GET", "/api/v1/products/{sku}"): filtered(Call("/api/v1/products/sku-1"), own="sku-1"),
        ("PUT", "/api/v1/products/{sku}"): refused(
            Call("/api/v1/products/sku-1", "admin", "PUT", body={"sku": "sku-1", "name": "renamed"})
        ),
        ("DELETE", "/api/v1/products/{sku}"): refused(Call("/api/v1/products/sku-1", "admin", "DELETE")),
        ("GET", "/api/v1/locations"): filtered(*on_both("/api/v1/locations"), own="site-a"),
        ("GET", "/api/v1/locations/{site_id}/{location_id}"): refused(Call("/api/v1/locations/site-b/shelf")),
        ("PUT", "/api/v1/locations/{site_id}/{location_id}"): refused(
            Call(
                "/api/v1/locations/site-b/shelf",
                "admin",
                "PUT",
                body={"site_id": "site-b", "location_id": "shelf", "kind": "shelf", "name": "taken"},
            )
        ),
        ("DELETE", "/api/v1/locations/{site_id}/{location_id}"): refused(
            Call("/api/v1/locations/site-b/shelf", "admin", "DELETE")
        ),
        ("GET", "/api/v1/lots/{sku}/{lot_code}"): filtered(Call("/api/v1/lots/sku-1/lot-1"), own="lot-1"),
        ("PUT", "/api/v1/lots/{sku}/{lot_code}"): refused(
            Call("/api/v1/lots/sku-1/lot-1", "admin", "PUT", body={"sku": "sku-1", "lot_code": "lot-1"})
        ),
        ("DELETE", "/api/v1/lots/{sku}/{lot_code}"): refused(
            Call("/api/v1/lots/sku-1/lot-1", "admin", "DELETE")
        ),
        ("GET", "/api/v1/items"): filtered(Call("/api/v1/items"), own=EPC_A),
        ("POST", "/api/v1/master/{kind}/import"): refused(
            Call("/api/v1/master/locations/import", "admin", "POST", body=[])
        ),
        ("GET", "/api/v1/master/{kind}/export"): refused(Call("/api/v1/master/locations/export", "admin")),
        ("GET", "/api/v1/stocktakes"): filtered(*on_both("/api/v1/stocktakes"), own="site-a"),
        ("GET", "/api/v1/stocktakes/discrepancies"): filtered(
            *on_both("/api/v1/stocktakes/discrepancies"), own="site-a"
        ),
        ("GET", "/api/v1/stocktakes/{run_id}"): refused(Call(f"/api/v1/stocktakes/{run}")),
        ("POST", "/api/v1/stocktakes/run"): filtered(Call("/api/v1/stocktakes/run", "operator", "POST")),
        ("POST", "/api/v1/stocktakes/discrepancies/{discrepancy_id}/accept"): refused(
            Call(f"/api/v1/stocktakes/discrepancies/{disc}/accept", "operator", "POST")
        ),
        ("POST", "/api/v1/stocktakes/discrepancies/{discrepancy_id}/dismiss"): refused(
            Call(f"/api/v1/stocktakes/discrepancies/{disc}/dismiss", "operator", "POST")
        ),
        ("GET", "/api/v1/proposals"): filtered(*on_both("/api/v1/proposals"), own="site-a"),
        ("GET", "/api/v1/forecasts"): filtered(*on_both("/api/v1/forecasts"), own="site-a"),
        ("GET", "/api/v1/proposals/export"): refused(Call("/api/v1/proposals/export", "admin")),
        ("POST", "/api/v1/proposals/exported"): refused(
            Call("/api/v1/proposals/exported", "admin", "POST", body={"ids": [proposal]})
        ),
        # A what-if scenario that reads a cloud site: only by users of that site (404 as for a missing one).
        ("POST", "/api/v1/whatif"): refused(Call("/api/v1/whatif", "operator", "POST", body=WHATIF_SITE_B)),
        ("POST", "/api/v1/whatif/png"): refused(
            Call("/api/v1/whatif/png", "operator", "POST", body=WHATIF_SITE_B)
        ),
        ("POST", "/api/v1/proposals/run"): refused(
            Call("/api/v1/proposals/run", "admin", "POST", body={"site": "site-b", "dry_run": True})
        ),
        ("GET", "/api/v1/proposals/{proposal_id}"): refused(Call(f"/api/v1/proposals/{proposal}")),
        ("POST", "/api/v1/proposals/{proposal_id}/approve"): refused(
            Call(f"/api/v1/proposals/{proposal}/approve", "operator", "POST", body={})
        ),
        ("POST", "/api/v1/proposals/{proposal_id}/reject"): refused(
            Call(f"/api/v1/proposals/{proposal}/reject", "operator", "POST", body={})
        ),
        ("POST", "/api/v1/replenish/{kind}/import"): refused(
            Call("/api/v1/replenish/suppliers/import", "admin", "POST", body=[])
        ),
        ("GET", "/api/v1/kpis"): filtered(*on_both("/api/v1/kpis")),
        ("GET", "/api/v1/dead-stock"): filtered(*on_both("/api/v1/dead-stock")),
        ("GET", "/api/v1/epcis/events"): refused(Call("/api/v1/epcis/events")),
        ("GET", "/api/v1/users"): refused(Call("/api/v1/users", "admin")),
        ("POST", "/api/v1/users"): refused(
            Call("/api/v1/users", "admin", "POST", body={"name": "mole", "role": "admin", "sites": ["*"]})
        ),
        ("POST", "/api/v1/users/{name}/disable"): refused(
            Call("/api/v1/users/boss/disable", "admin", "POST")
        ),
        ("POST", "/api/v1/users/{name}/enable"): refused(Call("/api/v1/users/boss/enable", "admin", "POST")),
        ("DELETE", "/api/v1/users/{name}/tokens"): refused(
            Call("/api/v1/users/boss/tokens", "admin", "DELETE")
        ),
        ("POST", "/api/v1/tokens/revoke"): refused(
            Call("/api/v1/tokens/revoke", "admin", "POST", body={"token": ids["edge_b_token"]})
        ),
        ("POST", "/web/login"): Rule(
            "public", (Call("/web/login", user="", method="POST", body={"token": "x" * 20}),)
        ),
        ("POST", "/web/logout"): Rule("public", (Call("/web/logout", user="", method="POST"),)),
        ("GET", "/web/session"): Rule("public", (Call("/web/session", user=""),)),
        # EPC_B's GTIN and serial: EPC_B is among the computed candidates, never among the known ones.
        ("GET", "/web/api/sgtin"): Rule(
            "sgtin", (Call("/web/api/sgtin", params={"gtin": "00614141007349", "serial": 314160}),)
        ),
        ("GET", "/web/api/items/{epc}/identity"): filtered(
            Call(f"/web/api/items/{EPC_A}/identity"), own="sku-1"
        ),
        ("GET", "/web/api/zones"): filtered(*on_both("/web/api/zones"), own="zone-a"),
    }


@dataclass
class TwoSites:
    app: Any
    client: httpx.AsyncClient
    tokens: dict[str, str]
    ids: dict[str, Any]


async def seed(engine: Any, client: httpx.AsyncClient) -> dict[str, Any]:
    """Readings above the limit (an alert each), stock, master data, stocktakes, proposals, forecasts."""
    ids: dict[str, Any] = {}
    for site in ("a", "b"):
        token = (await create_edge_async(engine, f"site-{site}", f"edge-{site}"))[1]
        ids[f"edge_{site}_token"] = token
        epc = EPC_A if site == "a" else EPC_B
        events = [
            reading(0, 9.5, zone=f"zone-{site}", sensor=f"probe-{site}"),
            movement(1, epc, f"shelf-{site}"),
            observation(2, epc),
            passage(3, epc),
        ]
        response = await client.post(
            f"/api/v1/edges/edge-{site}/batches",
            json=batch(f"edge-{site}", list(enumerate(events, start=1))),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
    await md.import_records(
        engine,
        "products",
        [
            masterdata_records.ProductRecord(
                sku="sku-1", gtin="00614141000418", name="milk", shelf_life_days=10
            )
        ],
    )
    await md.import_records(
        engine, "lots", [masterdata_records.LotRecord(sku="sku-1", lot_code="lot-1", expiry=date(2030, 1, 1))]
    )
    await md.import_records(
        engine, "items", [masterdata_records.ItemRecord(epc=EPC_A, sku="sku-1", lot_code="lot-1")]
    )
    await md.import_records(
        engine,
        "locations",
        [
            masterdata_records.LocationRecord(site_id=f"site-{s}", location_id="shelf", kind="shelf")
            for s in ("a", "b")
        ],
    )
    now = T0
    async with db.write_transaction(engine) as conn:
        for site in ("a", "b"):
            row = {"site_id": f"site-{site}", "window_start": now, "window_end": now, "started_at": now}
            run = await conn.scalar(
                stocktake_db.stocktake_runs.insert()
                .values(**row, runner="test", missing_after_windows=2)
                .returning(stocktake_db.stocktake_runs.c.id)
            )
            disc = await conn.scalar(
                stocktake_db.stocktake_discrepancies.insert()
                .values(
                    site_id=f"site-{site}",
                    kind="unexpected",
                    epc=EPC_A if site == "a" else EPC_B,
                    location="shelf",
                    status="open",
                    first_run_id=run,
                    last_run_id=run,
                )
                .returning(stocktake_db.stocktake_discrepancies.c.id)
            )
            proposal = await conn.scalar(
                rt.proposals.insert()
                .values(
                    site_id=f"site-{site}",
                    kind="transfer",
                    status="open",
                    need_key=f"need-{site}",
                    sku="sku-1",
                    location_id="shelf",
                    quantity=1.0,
                    reasoning="{}",
                    approvals_required=json.dumps([[1, "operator"]]),
                    created_at=now,
                )
                .returning(rt.proposals.c.id)
            )
            await conn.execute(
                rt.forecast_errors.insert().values(
                    site_id=f"site-{site}",
                    location_id="shelf",
                    sku="sku-1",
                    run_date=date(2025, 1, 1),
                    method="ses",
                    demand_class="smooth",
                    forecast=1.0,
                    history_days=30,
                    computed_at=now,
                )
            )
            ids[f"run_{site}"], ids[f"discrepancy_{site}"], ids[f"proposal_{site}"] = run, disc, proposal
        alerts = (await conn.execute(select(alerts_db.alerts.c.site_id, alerts_db.alerts.c.id))).all()
    ids.update({f"alert_{site_id[-1]}": alert_id for site_id, alert_id in alerts})
    assert {"alert_a", "alert_b"} <= ids.keys()
    return ids


@pytest.fixture
async def two_sites(tmp_path: Path) -> AsyncIterator[TwoSites]:
    settings = Settings(
        # max_event_age_s=None: the seeded events are dated 2025 (T0), outside the default window.
        cloud=CloudSettings(db_url=f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}", max_event_age_s=None),
        zones=[ZoneLimits(id=f"zone-{s}", site_id=f"site-{s}", max_temp_c=8.0) for s in ("a", "b")],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            ids = await seed(engine, client)
            tokens = {
                role: await create_user_async(engine, f"{role}-a", role, sites=["site-a"])
                for role in ("viewer", "operator", "admin")
            }
            tokens["boss"] = await create_user_async(engine, "boss", "admin")  # every site (the default)
            yield TwoSites(app, client, tokens, ids)


async def send(env: TwoSites, call: Call) -> httpx.Response:
    headers = {"Authorization": f"Bearer {env.tokens[call.user]}"} if call.user else {}
    return await env.client.request(
        call.method,
        call.path,
        params=call.params,
        content=None if call.body is None else json.dumps(call.body),
        headers={**headers, "Content-Type": "application/json"},
    )


def operations(app: Any) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}


async def test_every_operation_has_a_site_rule(two_sites: TwoSites) -> None:
    table = rules(two_sites.ids)
    missing = operations(two_sites.app) - table.keys()
    assert not missing, f"routes without a site rule (add them to rules()): {sorted(missing)}"
    assert not table.keys() - operations(two_sites.app), "rules for routes that no longer exist"


async def test_users_of_one_site_neither_read_nor_change_another_sites_data(two_sites: TwoSites) -> None:
    problems: list[str] = []
    for (method, path), rule in sorted(rules(two_sites.ids).items()):
        bodies = []
        for call in rule.calls:
            response = await send(two_sites, call)
            where = f"{method} {path} as {call.user or 'nobody'} {call.params or ''}: {response.status_code}"
            ok = answered_as_ruled(rule.kind, call, response)
            if not ok:
                problems.append(f"{where} {response.text[:200]}")
            # A marker the caller sent may come back as an echo ("site 'site-b' does not exist", the
            # EPC asked for); the others would be site-b's rows.
            asked = f"{call.path} {call.params} {call.body}"
            leaked = [
                m
                for m in B_MARKERS
                if m in response.text and m not in asked and rule.kind not in ("sgtin", "scrape")
            ]
            if leaked:
                problems.append(f"{where} shows site-b data {leaked}")
            bodies.append(response.text)
        if rule.own is not None and not any(rule.own in body for body in bodies):
            problems.append(f"{method} {path}: the user's own data ({rule.own}) is missing too")
    assert not problems, "\n".join(problems)
    await site_b_unchanged(two_sites)


def answered_as_ruled(kind: str, call: Call, response: httpx.Response) -> bool:
    status = response.status_code
    if kind == "refused":
        return status in (403, 404)
    if kind == "edge":
        return status == 403
    if kind in ("public", "scrape"):
        return status < 500
    if kind == "sgtin":
        body = response.json()
        return status == 200 and EPC_B in body["candidates"] and EPC_B not in body["known"]
    assert kind == "filtered", kind
    return status < 300 or (call.params.get("site") == "site-b" and status in (404, 422))


async def site_b_unchanged(env: TwoSites) -> None:
    """Every refused write left site-b as it was (checked by a user of every site)."""
    ids = env.ids

    async def get(path: str, **params: Any) -> Any:
        response = await send(env, Call(path, user="boss", params=params))
        assert response.status_code == 200, response.text
        return response.json()

    assert (await get(f"/api/v1/alerts/{ids['alert_b']}"))["status"] == "open"
    assert (await get(f"/api/v1/proposals/{ids['proposal_b']}"))["status"] == "open"
    discrepancies = await get("/api/v1/stocktakes/discrepancies", site="site-b")
    assert [d["status"] for d in discrepancies["items"]] == ["open"]
    assert (await get("/api/v1/locations/site-b/shelf"))["name"] == ""
    assert (await get("/api/v1/products/sku-1"))["name"] == "milk"
    users = {u["name"]: u for u in await get("/api/v1/users")}
    assert "mole" not in users and users["boss"]["disabled"] is False and users["boss"]["tokens"] == 1
    edges = {e["edge_id"] for e in (await get("/api/v1/edges"))["items"]}
    assert edges == {"edge-a", "edge-b"}
    still = await env.client.post(
        "/api/v1/edges/edge-b/batches",
        json=batch("edge-b", [(9, reading(20, 5.0, zone="zone-b", sensor="probe-b"))]),
        headers={"Authorization": f"Bearer {ids['edge_b_token']}"},
    )
    assert still.status_code == 200, still.text


async def test_a_user_of_every_site_sees_both(two_sites: TwoSites) -> None:
    """The control: the markers are there for a user of every site (the default for existing users)."""
    for path in ("/api/v1/alerts", "/api/v1/stock", "/api/v1/edges", "/api/v1/proposals", "/api/v1/summary"):
        response = await send(two_sites, Call(path, user="boss"))
        assert response.status_code == 200, response.text
        assert "-a" in response.text and "-b" in response.text, path  # site-a/edge-a and site-b/edge-b


async def test_a_page_session_keeps_the_users_sites(two_sites: TwoSites) -> None:
    """The operator page's session (cookie) is scoped like the token it was started from."""
    login = await two_sites.client.post("/web/login", json={"token": two_sites.tokens["viewer"]})
    assert login.status_code == 200, login.text
    for path in ("/api/v1/edges", "/api/v1/alerts", "/api/v1/stock"):
        response = await two_sites.client.get(path)  # the cookie only, no bearer
        assert response.status_code == 200, response.text
        assert "-a" in response.text and not [m for m in B_MARKERS if m in response.text], path
    refused = await two_sites.client.get(f"/api/v1/alerts/{two_sites.ids['alert_b']}")
    assert refused.status_code == 404
