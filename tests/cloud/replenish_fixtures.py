"""Shared setup of the restocking tests: master data, a movement history, an app with users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.admin import create_user_async
from cloud.core import db
from cloud.ingest.projections import insert_history, upsert_latest
from cloud.main import create_app
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.replenish import masterdata as rmd
from shelfsense.config import CloudSettings, ReplenishSettings, Settings
from shelfsense.contract import SequencedEvent, StockMovement

SITE = "site-1"
TODAY = datetime.now(UTC).date()
COST = 10.0


def epc(product: int, serial: int) -> str:
    return f"3034{product:04X}{serial:016X}"


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


@dataclass
class Ledger:
    """Builds movements with increasing sequence numbers for one edge."""

    engine: AsyncEngine
    edge: str = "edge-1"
    seq: int = 0
    pending: list[SequencedEvent] = field(default_factory=list)

    def move(self, tag: str, frm: str | None, to: str | None, when: datetime, reason: str = "portal") -> None:
        self.seq += 1
        event = StockMovement(epc=tag, from_location=frm, to_location=to, reason=reason, at=when)  # type: ignore[arg-type]
        self.pending.append(SequencedEvent(seq=self.seq, event=event))

    async def flush(self) -> None:
        async with db.write_transaction(self.engine) as conn:
            await insert_history(conn, SITE, self.edge, self.pending)
            await upsert_latest(conn, SITE, self.edge, self.pending)
        self.pending = []


async def master_data(engine: AsyncEngine, products: int = 2, items_per_product: int = 120) -> None:
    await md.import_records(
        engine,
        "products",
        [masterdata_records.ProductRecord(sku=f"P{p}", name=f"product {p}") for p in range(1, products + 1)],
    )
    await md.import_records(
        engine,
        "locations",
        [
            masterdata_records.LocationRecord(site_id=SITE, location_id="backroom", kind="zone"),
            masterdata_records.LocationRecord(site_id=SITE, location_id="shelf-b", kind="shelf"),
            masterdata_records.LocationRecord(site_id=SITE, location_id="cold-1", kind="cold_room"),
            masterdata_records.LocationRecord(site_id=SITE, location_id="dock-1", kind="dock"),
        ],
    )
    await md.import_records(
        engine,
        "items",
        [
            masterdata_records.ItemRecord(epc=epc(p, i), sku=f"P{p}")
            for p in range(1, products + 1)
            for i in range(items_per_product)
        ],
    )
    await rmd.import_text(
        engine,
        "suppliers",
        "supplier_id,name,lead_time_days,lead_time_std_days,moq\nACME,Acme,7,0,0\n",
        "csv",
    )
    await rmd.import_text(
        engine,
        "product_suppliers",
        "sku,supplier_id,pack_size,unit_cost,preferred\n"
        + "".join(f"P{p},ACME,12,{COST},true\n" for p in range(1, products + 1)),
        "csv",
    )


async def history(engine: AsyncEngine, received: int = 70, days: int = 30, per_day: int = 2) -> Ledger:
    """P1: ``received`` units into the backroom 40 days ago, ``per_day`` shipped on each of the last
    ``days`` days (so on hand = received - days * per_day)."""
    ledger = Ledger(engine)
    start = TODAY - timedelta(days=40)
    for i in range(received):
        ledger.move(epc(1, i), None, "backroom", at(start))
    serial = 0
    for d in range(days, 0, -1):
        for k in range(per_day):
            ledger.move(epc(1, serial), "backroom", None, at(TODAY - timedelta(days=d), 10, k))
            serial += 1
    await ledger.flush()
    return ledger


@dataclass
class App:
    app: FastAPI
    client: httpx.AsyncClient
    engine: AsyncEngine
    tokens: dict[str, str]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def get(self, user: str, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth(user))

    async def post(self, user: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth(user))


def replenish_settings(db_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "enabled": False,  # tests drive runs themselves
        "approval_thresholds": [{"above_amount": 100.0, "level": 2, "role": "finance"}],
        "approvers": {"finance": ["fiona"]},
    }
    base.update(overrides)
    return Settings(
        cloud=CloudSettings(max_event_age_s=None, db_url=db_url, replenish=ReplenishSettings(**base))
    )


async def running_app(settings: Settings) -> AsyncIterator[App]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            tokens = {
                "vera": await create_user_async(engine, "vera", "viewer"),
                "oscar": await create_user_async(engine, "oscar", "operator"),
                "olga": await create_user_async(engine, "olga", "operator"),
                "fiona": await create_user_async(engine, "fiona", "operator"),
                "ada": await create_user_async(engine, "ada", "admin"),
            }
            yield App(app, client, engine, tokens)
