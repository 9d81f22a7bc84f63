"""Continuous stocktake through the store and the API, and the job shared by two replicas."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from conftest import T0, Cloud, at, batch, movement, passage
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db
from cloud.main import create_app
from cloud.masterdata import service as md
from cloud.stocktake import tables as stocktake_db
from cloud.stocktake.reconcile import ReconcileParams
from cloud.stocktake.service import StocktakeOptions, ensure_job, job_tick, run_site
from shelfsense.config import Settings

LOCATIONS = [
    {"site_id": "site-1", "location_id": "shelf-a", "kind": "shelf", "rfid_coverage": True},
    {"site_id": "site-1", "location_id": "shelf-b", "kind": "shelf", "rfid_coverage": True},
    {"site_id": "site-1", "location_id": "backroom", "kind": "zone"},
]
A, B, C, D, U = "AAAA0001", "AAAA0002", "AAAA0003", "AAAA0004", "FFFF0009"
OPTIONS = StocktakeOptions(enabled=False, interval_s=60, params=ReconcileParams(missing_after_windows=2))


def seen(seconds: float, epc: str, location: str, count: int = 4) -> dict[str, Any]:
    return {
        "kind": "tag_observation",
        "epc": epc,
        "reader": f"uhf-{location}",
        "antenna": 1,
        "first_seen": at(seconds),
        "last_seen": at(seconds + 5),
        "count": count,
        "location": location,
    }


class Feed:
    """Posts events of edge-1 with running sequence numbers."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud, self.seq = cloud, 0

    async def __call__(self, *events: dict[str, Any]) -> None:
        numbered = []
        for event in events:
            self.seq += 1
            numbered.append((self.seq, event))
        response = await self.cloud.post(batch("edge-1", numbered))
        assert response.status_code == 200, response.text


async def window(cloud: Cloud, n: int) -> dict[str, Any]:
    """Run the stocktake of window ``n`` (ends at T0 + n minutes) and return its API detail."""
    run_id = await run_site(cloud.engine, "site-1", T0 + timedelta(minutes=n), OPTIONS)
    assert run_id is not None
    detail: dict[str, Any] = await cloud.get_ok(f"/api/v1/stocktakes/{run_id}")
    return detail


def kinds(detail: dict[str, Any]) -> set[tuple[str, str]]:
    return {(d["kind"], d["epc"]) for d in detail["current"] if d["status"] in ("open", "dismissed")}


async def test_runs_deltas_coverage_and_decisions(cloud: Cloud) -> None:
    await md.import_text(cloud.engine, "locations", json.dumps(LOCATIONS), "json")
    await md.import_text(cloud.engine, "products", "sku\nMILK\n", "csv")
    await md.import_text(cloud.engine, "items", f"epc,sku\n{A},MILK\n{B},MILK\n{C},MILK\n", "csv")
    feed = Feed(cloud)
    await feed(movement(0, A, "shelf-a"), movement(0, B, "shelf-a"), movement(0, C, "shelf-b"))
    await feed(movement(0, D, "backroom"))  # not covered: never reconciled as missing

    # Window 1: B is read on shelf-b only, U is a foreign tag, C unseen once (not yet missing).
    await feed(seen(10, A, "shelf-a"), seen(11, B, "shelf-b"), seen(12, U, "shelf-b"))
    run1 = await window(cloud, 1)
    assert kinds(run1) == {("misplaced", B), ("unknown", U)}
    assert (run1["new_discrepancies"], run1["resolved_discrepancies"]) == (2, 0)
    shelves = {loc["location"]: loc for loc in run1["locations"]}
    assert set(shelves) == {"shelf-a", "shelf-b"}
    assert (shelves["shelf-a"]["status"], shelves["shelf-a"]["read_rate"]) == ("ok", 0.5)
    assert (shelves["shelf-b"]["book_count"], shelves["shelf-b"]["seen_count"]) == (1, 0)

    # Window 2: C unseen a second covered window -> missing; U gone -> resolved.
    await feed(seen(70, A, "shelf-a"), seen(71, B, "shelf-b"))
    run2 = await window(cloud, 2)
    assert kinds(run2) == {("misplaced", B), ("missing", C)}
    assert (run2["new_discrepancies"], run2["resolved_discrepancies"]) == (1, 1)
    assert [d["epc"] for d in run2["resolved"]] == [U]
    missing = next(d for d in run2["current"] if d["kind"] == "missing")
    assert (missing["location"], missing["unseen_windows"], missing["first_run_id"]) == (
        "shelf-b",
        2,
        run2["id"],
    )

    # Window 3: shelf-b's reader is quiet: "no coverage", nothing new goes missing there.
    await feed(seen(130, A, "shelf-a"), seen(131, B, "shelf-a"))
    run3 = await window(cloud, 3)
    shelves = {loc["location"]: loc for loc in run3["locations"]}
    assert (shelves["shelf-b"]["status"], shelves["shelf-b"]["confidence"]) == ("no_coverage", 0.0)
    assert kinds(run3) == {("missing", C)}  # B is back on its book shelf: misplaced resolved

    # The list endpoint filters by location and is newest first.
    runs = await cloud.get_ok("/api/v1/stocktakes", location="shelf-b", site="site-1")
    assert [r["id"] for r in runs["items"]] == [run3["id"], run2["id"], run1["id"]]
    assert all([loc["location"] for loc in r["locations"]] == ["shelf-b"] for r in runs["items"])
    open_at_b = await cloud.get_ok("/api/v1/stocktakes/discrepancies", location="shelf-b")
    assert [(d["kind"], d["epc"]) for d in open_at_b["items"]] == [("missing", C)]

    # Operator decisions: viewers may not; accepting posts the adjusting movement.
    path = f"/api/v1/stocktakes/discrepancies/{missing['id']}/accept"
    viewer = {"Authorization": f"Bearer {cloud.viewer}"}
    assert (await cloud.client.post(path, headers=viewer)).status_code == 403
    operator = await _operator(cloud)
    accepted = await cloud.client.post(path, headers=operator)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["decided_by"]) == ("accepted", "otto")
    again = await cloud.client.post(path, headers=operator)
    assert (again.status_code, again.json()["code"]) == (409, "not_open")
    item = await cloud.get_ok(f"/api/v1/items/{C}")
    assert item["stock"][0]["present"] is False
    assert item["movements"][0]["reason"] == "adjustment"

    # Dismissed discrepancies stay dismissed while later runs still see them.
    await feed(seen(190, A, "shelf-a"), seen(191, B, "shelf-b"))
    run4 = await window(cloud, 4)
    misplaced = next(d for d in run4["current"] if d["kind"] == "misplaced")
    dismissed = await cloud.client.post(
        f"/api/v1/stocktakes/discrepancies/{misplaced['id']}/dismiss", headers=operator
    )
    assert dismissed.json()["status"] == "dismissed"
    await feed(seen(250, A, "shelf-a"), seen(251, B, "shelf-b"))
    run5 = await window(cloud, 5)
    assert run5["new_discrepancies"] == 0
    assert [(d["id"], d["status"]) for d in run5["current"]] == [(misplaced["id"], "dismissed")]
    assert "missing" not in {d["kind"] for d in run5["current"]}  # C left the books when accepted


async def _operator(cloud: Cloud) -> dict[str, str]:
    from cloud.admin import create_user_async

    token = await create_user_async(cloud.engine, "otto", "operator")
    return {"Authorization": f"Bearer {token}"}


async def test_manual_run_endpoint(cloud: Cloud) -> None:
    await md.import_text(cloud.engine, "locations", json.dumps(LOCATIONS[:1]), "json")
    operator = await _operator(cloud)
    response = await cloud.client.post("/api/v1/stocktakes/run", headers=operator)
    assert response.status_code == 200, response.text
    (run_id,) = response.json()
    detail = await cloud.get_ok(f"/api/v1/stocktakes/{run_id}")
    assert [(loc["location"], loc["status"]) for loc in detail["locations"]] == [("shelf-a", "idle")]
    assert (await cloud.get("/api/v1/stocktakes/999999")).status_code == 404


@contextlib.asynccontextmanager
async def replica(settings: Settings, runner: str, interval_s: float) -> AsyncIterator[FastAPI]:
    options = StocktakeOptions(interval_s=interval_s, runner=runner)
    app = create_app(settings, stocktake=options)
    async with app.router.lifespan_context(app):
        yield app


async def test_two_replicas_share_the_periodic_job(settings: Settings) -> None:
    """Two app instances on one database: every tick is run by exactly one of them."""
    interval = 0.25
    async with replica(settings, "replica-a", interval) as first:
        engine: AsyncEngine = first.state.engine
        await md.import_text(engine, "locations", json.dumps(LOCATIONS), "json")
        async with replica(settings, "replica-b", interval):
            await asyncio.sleep(interval * 6)
        async with engine.connect() as conn:
            r = stocktake_db.stocktake_runs
            runs = (await conn.execute(select(r.c.window_end, r.c.runner).order_by(r.c.id))).all()
            job = (await conn.execute(select(db.jobs).where(db.jobs.c.name == "stocktake"))).mappings().one()
    assert len(runs) >= 3
    ends = [row.window_end for row in runs]
    assert len(set(ends)) == len(ends)  # no tick ran twice
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ends)]
    assert min(gaps) >= interval * 0.9, gaps
    # Every claim ran, except perhaps the last: replica-a's job (on its own loop, cloud.api.read_gate)
    # may be between claiming a tick and recording its run when the rows are read.
    in_flight = job["runs"] - len(runs)
    assert in_flight in (0, 1), (job["runs"], len(runs))
    if in_flight:
        assert db.utc(job["last_started_at"]) > max(db.utc(end) for end in ends)


async def test_job_tick_claims_only_when_due(cloud: Cloud) -> None:
    await md.import_text(cloud.engine, "locations", json.dumps(LOCATIONS[:1]), "json")
    options = StocktakeOptions(interval_s=60)
    await ensure_job(cloud.engine, 300)  # idempotent: the app's own job loop may have done it
    assert await job_tick(cloud.engine, options, now=T0) == []  # the first tick is one interval away
    now = db.utcnow() + timedelta(seconds=301)
    first = await job_tick(cloud.engine, options, now=now)
    assert len(first) == 1
    assert await job_tick(cloud.engine, options, now=now + timedelta(seconds=30)) == []
    assert len(await job_tick(cloud.engine, options, now=now + timedelta(seconds=61))) == 1


async def test_unknown_direction_passages_wait_for_the_stocktake_and_move_no_stock(cloud: Cloud) -> None:
    """Issue 14 item 5: a passage without a direction moves nothing, is listed as unresolved, and
    the first stocktake run whose window starts after it resolves it; the tag the readers then see
    on a shelf is an ``unexpected`` discrepancy for the operator to accept."""
    await md.import_text(cloud.engine, "locations", json.dumps(LOCATIONS), "json")
    feed = Feed(cloud)
    unknown = {**passage(10, A, "unknown"), "unknown_reason": "reader_down"}
    legacy = passage(20, B, "unknown")  # an older edge gives no reason: still flagged
    await feed(unknown, legacy, passage(30, C, "in"))
    await feed(seen(90, A, "shelf-a"))
    moved = await cloud.get_ok("/api/v1/movements")
    assert moved["total"] == 0  # the edge guessed nothing and neither does the cloud
    page = await cloud.get_ok("/api/v1/passages", unresolved="true")
    assert [(p["epc"], p["unknown_reason"], p["resolved_run_id"]) for p in page["items"]] == [
        (B, "one_zone", None),
        (A, "reader_down", None),
    ]
    assert (await cloud.get_ok("/api/v1/summary"))["passages_direction_unknown"] == 2
    bad = await cloud.get("/api/v1/passages", direction="sideways")
    assert bad.status_code == 422

    detail = await window(cloud, 2)  # window [T0+1 min, T0+2 min): after both passages
    assert ("unexpected", A) in kinds(detail)
    assert (await cloud.get_ok("/api/v1/passages", unresolved="true"))["total"] == 0
    resolved = await cloud.get_ok("/api/v1/passages", direction="unknown")
    assert {p["resolved_run_id"] for p in resolved["items"]} == {detail["id"]}
    assert (await cloud.get_ok("/api/v1/summary"))["passages_direction_unknown"] == 0
