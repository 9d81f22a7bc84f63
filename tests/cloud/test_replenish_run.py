"""The restocking run on the database: demand from the ledger, proposals, no duplicates, dry run, job."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import numpy as np
from replenish_fixtures import SITE, TODAY, Ledger, at, epc, history, master_data
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db
from cloud.core.migrate import upgrade_to_head
from cloud.masterdata.records import MasterDataError
from cloud.replenish import demand as replenish_demand
from cloud.replenish import masterdata as rmd
from cloud.replenish import options as replenish_options
from cloud.replenish import run as replenish_run
from cloud.replenish import service as svc
from cloud.replenish import tables as rt
from shelfsense.cli import main as cli_main
from shelfsense.config import ReplenishSettings


async def _engine(db_url: str) -> AsyncEngine:
    engine = db.create_engine(db_url)
    await upgrade_to_head(engine)
    return engine


def _options(**overrides: object) -> replenish_options.ReplenishOptions:
    return replenish_options.ReplenishOptions(settings=ReplenishSettings(enabled=False, **overrides))  # type: ignore[arg-type]


async def _count(engine: object, status: str | None = None) -> int:
    p = rt.proposals
    query = select(func.count()).select_from(p)
    if status:
        query = query.where(p.c.status == status)
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(await conn.scalar(query) or 0)


async def test_demand_is_outbound_only(db_url: str) -> None:
    """Receipts, internal moves, write-offs and the dock->outside hop are not demand."""
    engine = await _engine(db_url)
    try:
        await master_data(engine)
        ledger = Ledger(engine)
        day = TODAY - timedelta(days=3)
        for i in range(6):
            ledger.move(epc(1, i), None, "backroom", at(day, 8))  # receipt
        ledger.move(epc(1, 0), "backroom", None, at(day, 9))  # sold: demand at backroom
        ledger.move(epc(1, 1), "backroom", None, at(day, 10))  # sold
        ledger.move(epc(1, 2), "backroom", "shelf-b", at(day, 11))  # internal move
        ledger.move(epc(1, 2), "shelf-b", "dock-1", at(day + timedelta(days=1), 9))  # shipping from shelf
        ledger.move(epc(1, 2), "dock-1", None, at(day + timedelta(days=1), 10))  # same unit leaving
        ledger.move(epc(1, 3), "backroom", None, at(day, 12), reason="adjustment")  # write-off
        await ledger.flush()
        async with engine.connect() as conn:
            demand = await replenish_demand.load_demand(conn, [SITE], TODAY - timedelta(days=7), 7)
        series = {key: demand.matrix[i] for i, key in enumerate(demand.keys)}
        assert set(series) == {(SITE, "backroom", "P1"), (SITE, "shelf-b", "P1")}
        assert series[(SITE, "backroom", "P1")].sum() == 2
        assert series[(SITE, "backroom", "P1")][4] == 2  # day index of TODAY - 3
        assert series[(SITE, "shelf-b", "P1")].sum() == 1
        assert demand.last_outbound[(SITE, "shelf-b", "P1")] == day + timedelta(days=1)
    finally:
        await engine.dispose()


async def test_run_proposes_once_with_reasoning(db_url: str) -> None:
    engine = await _engine(db_url)
    try:
        await master_data(engine)
        await history(engine)  # 10 on hand, 2 per day, lead time 7 days
        options = _options()
        dry = await replenish_run.replenish(engine, options, today=TODAY, dry_run=True)
        assert await _count(engine) == 0  # a dry run writes nothing
        (site,) = dry["sites"]
        purchases = [p for p in site["proposals"] if p["kind"] == "purchase"]
        assert len(purchases) == 1
        first = await replenish_run.replenish(engine, options, today=TODAY)
        (made,) = first["sites"][0]["proposals"]
        assert made["sku"] == "P1" and made["location_id"] == "backroom" and made["supplier_id"] == "ACME"
        assert made["quantity"] % 12 == 0 and made["quantity"] >= 12  # whole packs
        assert made["order_by"] >= TODAY.isoformat()  # never in the past
        reasoning = made["reasoning"]
        assert 1.4 < reasoning["forecast_per_day"] <= 2.05  # 60 days without demand, then 2 per day
        assert reasoning["lead_time_days"] == 7 and reasoning["on_hand"] == 10
        assert reasoning["reorder_point"] >= 14 - 1e-6
        assert made["approvals_required"] == [[1, "operator"]]  # 120 is not above 100 000
        assert dry["sites"][0]["proposals"][0]["need_key"] == made["need_key"]

        again = await replenish_run.replenish(engine, options, today=TODAY)
        assert again["sites"][0]["proposals"] == []
        # The open proposal counts in the position, so the need is covered (or reported as suppressed).
        for suppressed in again["sites"][0]["suppressed"]:
            assert suppressed["open_proposals"] == [str(made["id"])]
        assert await _count(engine, "open") == 1
    finally:
        await engine.dispose()


async def test_concurrent_runs_never_duplicate(db_url: str) -> None:
    engine = await _engine(db_url)
    try:
        await master_data(engine)
        await history(engine)
        options = _options()
        await asyncio.gather(*(replenish_run.replenish(engine, options, today=TODAY) for _ in range(3)))
        assert await _count(engine, "open") == 1
    finally:
        await engine.dispose()


async def test_transfer_preferred_over_purchase(db_url: str) -> None:
    engine = await _engine(db_url)
    try:
        await master_data(engine)
        ledger = await history(engine)
        for i in range(100, 120):  # 20 idle units of P1 on shelf-b
            ledger.move(epc(1, i), None, "shelf-b", at(TODAY - timedelta(days=40)))
        await ledger.flush()
        report = await replenish_run.replenish(engine, _options(), today=TODAY)
        site = report["sites"][0]
        kinds = [(p["kind"], p["source_location"], p["location_id"]) for p in site["proposals"]]
        assert kinds == [("transfer", "shelf-b", "backroom")]
        # Received 40 days ago: not dead under the default 90 days since receipt, dead under 30.
        assert not any(a["kind"] == "dead_stock" for a in site["alerts"])
        young = await replenish_run.replenish(
            engine, _options(dead_stock_receipt_days=30, dead_stock_days=30), today=TODAY, dry_run=True
        )
        dead = [a for a in young["sites"][0]["alerts"] if a["kind"] == "dead_stock"]
        assert [(a["location_id"], a["days_since_receipt"], a["days_without_outbound"]) for a in dead] == [
            ("shelf-b", 40, None)
        ]
    finally:
        await engine.dispose()


async def test_open_purchase_order_counts_as_on_order(db_url: str) -> None:
    engine = await _engine(db_url)
    try:
        await master_data(engine)
        await history(engine)
        expected = (TODAY + timedelta(days=3)).isoformat()
        csv_text = (
            "po_number,supplier_id,site_id,location_id,sku,quantity,expected_date\n"
            f"PO-1,ACME,{SITE},backroom,P1,48,{expected}\n"
        )
        assert await rmd.import_text(engine, "purchase_orders", csv_text, "csv") == 1
        report = await replenish_run.replenish(engine, _options(), today=TODAY)
        assert report["sites"][0]["proposals"] == []
        # Received: no longer on order, so the need comes back.
        received = csv_text.replace(
            "expected_date\n", "expected_date,status,received_date,received_quantity\n"
        )
        received = received.replace(f"{expected}\n", f"{expected},received,{TODAY.isoformat()},48\n")
        await rmd.import_text(engine, "purchase_orders", received, "csv")
        report = await replenish_run.replenish(engine, _options(), today=TODAY)
        assert len(report["sites"][0]["proposals"]) == 1
    finally:
        await engine.dispose()


async def test_order_import_is_all_or_nothing(db_url: str) -> None:
    engine = await _engine(db_url)
    try:
        await master_data(engine)
        rows = [
            {"po_number": "PO-9", "supplier_id": "ACME", "site_id": SITE, "location_id": "backroom",
             "sku": "P1", "quantity": 5, "expected_date": TODAY.isoformat()},
            {"po_number": "PO-9", "supplier_id": "NOPE", "site_id": SITE, "location_id": "backroom",
             "sku": "P2", "quantity": -1, "expected_date": TODAY.isoformat()},
        ]  # fmt: skip
        try:
            await rmd.import_text(engine, "purchase_orders", json.dumps(rows), "json")
            raise AssertionError("import should be refused")
        except MasterDataError as exc:
            columns = {(p.row, p.column) for p in exc.problems}
        assert (2, "quantity") in columns
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(rt.purchase_orders)) == 0
    finally:
        await engine.dispose()


async def test_min_max_override_and_forecast_vectorised(db_url: str) -> None:
    engine = await _engine(db_url)
    try:
        await master_data(engine)
        await history(engine)
        await rmd.import_text(
            engine, "params", f"site_id,location_id,sku,min_qty,max_qty\n{SITE},backroom,P1,12,30\n", "csv"
        )
        report = await replenish_run.replenish(engine, _options(), today=TODAY)
        (made,) = report["sites"][0]["proposals"]
        assert made["reasoning"]["order_up_to"] == 30
        history_ = replenish_demand.DemandHistory(
            TODAY, [("s", "a", "x"), ("s", "b", "y")], np.tile([0.0, 3.0], (2, 20)), {}
        )
        forecasts = replenish_demand.forecast_all(history_)
        assert set(forecasts) == {("s", "a", "x"), ("s", "b", "y")}
    finally:
        await engine.dispose()


async def test_job_runs_on_one_replica_only(db_url: str) -> None:
    engines = [await _engine(db_url) for _ in range(3)]
    try:
        await master_data(engines[0])
        await history(engines[0])
        options = _options(interval_s=3600)
        await svc.ensure_job(engines[0], 3600)
        later = db.utcnow() + timedelta(hours=2)
        reports = await asyncio.gather(*(svc.job_tick(e, options, later) for e in engines))
        assert sum(r is not None for r in reports) == 1
        assert await _count(engines[0], "open") == 1
        assert await svc.job_tick(engines[1], options, later) is None  # next tick is an hour later
    finally:
        for engine in engines:
            await engine.dispose()


def test_cli_dry_run_prints_json_and_writes_nothing(db_url: str, capsys: object) -> None:
    async def seed() -> None:
        engine = await _engine(db_url)
        try:
            await master_data(engine)
            await history(engine)
        finally:
            await engine.dispose()

    asyncio.run(seed())
    plain = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    assert cli_main(["cloud", "replenish", "--dry-run", "--json", "--db", plain, "--site", SITE]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    report = json.loads(out)
    assert report["dry_run"] is True
    assert [p["kind"] for p in report["sites"][0]["proposals"]] == ["purchase"]
    # Without --json: a summary line per site and a table of the proposals with their units.
    assert cli_main(["cloud", "replenish", "--dry-run", "--db", plain, "--site", SITE]) == 0
    lines = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert "dry run, nothing written" in lines[0]
    assert any(line.strip().startswith(f"site {SITE}: ") and "1 proposals" in line for line in lines)
    header = lines.index(next(line for line in lines if line.startswith("site ") and "quantity" in line))
    purchase = lines[header + 1].split()
    assert purchase[:2] == [SITE, "purchase"] and purchase[-1] == "units"

    async def count() -> int:
        engine = await _engine(db_url)
        try:
            return await _count(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(count()) == 0
