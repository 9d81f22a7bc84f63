"""``zone_products`` (items per site, location and product, kept current by each stock upsert and
item registration) equals the count from scratch over ``stock_items`` and a replay of the ledger
(``stock_movements``), and serves the restocking's stock on hand, after random histories:
moves arriving out of order, items leaving, items registered after their first moves or given
another product. And the ingest's per-zone product limits read from it equal the former scan over
every on-hand item of the site. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, or_, select

from cloud.admin import create_edge_async
from cloud.coldchain.service import product_limits
from cloud.core import db
from cloud.core.migrate import upgrade_to_head
from cloud.ingest.service import ingest_batch
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from cloud.masterdata import tables as masterdata_db
from cloud.replenish.state import _on_hand as replenish_on_hand
from cloud.stock import tables as stock_db
from cloud.stock import zone_stock
from shelfsense.contract import Batch

LOCATIONS = ["cold-1", "cold-1-shelf", "cold-2", "dock"]
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
_COUNTER = itertools.count()
_MIGRATED: set[str] = set()


async def scanned_limits(conn: Any, site_id: str, zones: list[str]) -> dict[str, tuple[Any, ...]]:
    """The former query (before revision 0015): every present item of the site joined in."""
    s, i, p, loc = stock_db.stock_items, masterdata_db.items, masterdata_db.products, masterdata_db.locations
    query = (
        select(s.c.location, loc.c.parent_id, p.c.sku, p.c.storage_temp_min_c, p.c.storage_temp_max_c)
        .distinct()
        .select_from(
            s.join(i, i.c.epc == s.c.epc)
            .join(p, p.c.sku == i.c.sku)
            .outerjoin(loc, and_(loc.c.site_id == s.c.site_id, loc.c.location_id == s.c.location))
        )
        .where(
            s.c.site_id == site_id,
            s.c.present.is_(True),
            or_(p.c.storage_temp_min_c.is_not(None), p.c.storage_temp_max_c.is_not(None)),
            or_(s.c.location.in_(zones), loc.c.parent_id.in_(zones)),
        )
    )
    found: dict[str, set[str]] = defaultdict(set)
    for row in await conn.execute(query):
        found[row.location if row.location in zones else row.parent_id].add(row.sku)
    return {zone: tuple(sorted(skus)) for zone, skus in found.items()}


async def replayed(conn: Any, site_id: str) -> dict[tuple[str, str, str], int]:
    """The ledger replayed: each item's latest movement (by time, then arrival) says where it is."""
    m, i = stock_db.stock_movements, masterdata_db.items
    rows = await conn.execute(select(m.c.epc, m.c.to_location, m.c.at, m.c.seq).where(m.c.site_id == site_id))
    last: dict[str, tuple[Any, int, str | None]] = {}
    for epc, to, at, seq in rows:
        if epc not in last or (db.utc(at), seq) >= last[epc][:2]:
            last[epc] = (db.utc(at), seq, to)
    skus = dict((await conn.execute(select(i.c.epc, i.c.sku).where(i.c.epc.in_(list(last))))).all())
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for epc, (_, _, to) in last.items():
        if to is not None and skus.get(epc) is not None:
            counts[(site_id, to, skus[epc])] += 1
    return dict(counts)


async def _example(url: str, rnd: random.Random) -> None:
    n = next(_COUNTER)
    engine = db.create_engine(url)
    try:
        if url not in _MIGRATED:
            await upgrade_to_head(engine)
            _MIGRATED.add(url)
        site = f"zs{n}"
        edge = (await create_edge_async(engine, site, f"zs{n}-edge"))[0]
        locations = [
            {"site_id": site, "location_id": "cold-1", "kind": "zone"},
            {"site_id": site, "location_id": "cold-1-shelf", "kind": "shelf", "parent_id": "cold-1"},
        ]
        await md.import_records(engine, "locations", masterdata_records.parse_rows("locations", locations))
        skus = [f"ZS{n}A", f"ZS{n}B"]
        products = [{"sku": skus[0], "storage_temp_max_c": 8}, {"sku": skus[1], "storage_temp_min_c": 0}]
        await md.import_records(engine, "products", masterdata_records.parse_rows("products", products))
        epcs = [f"3035{n:06X}{k:014X}" for k in range(rnd.randint(1, 8))]
        early = [e for e in epcs if rnd.random() < 0.5]
        register = lambda chosen: [{"epc": e, "sku": rnd.choice(skus)} for e in chosen]  # noqa: E731
        await md.import_records(engine, "items", masterdata_records.parse_rows("items", register(early)))
        moves = []
        for epc in epcs:
            for _ in range(rnd.randint(1, 4)):
                at = START + timedelta(minutes=rnd.randint(0, 600))
                to = rnd.choice([*LOCATIONS, None])
                moves.append({"kind": "stock_movement", "epc": epc, "to_location": to, "at": at.isoformat()})
        rnd.shuffle(moves)
        seq = 1
        for start in range(0, len(moves), 5):
            chunk = moves[start : start + 5]
            body = {
                "v": 1,
                "edge_id": edge,
                "created_at": datetime.now(UTC).isoformat(),
                "events": [{"seq": seq + k, "event": e} for k, e in enumerate(chunk)],
            }
            seq += len(chunk)
            await ingest_batch(engine, Batch.model_validate(body), {})
        await md.import_records(
            engine, "items", masterdata_records.parse_rows("items", register(epcs))
        )  # late, re-assigned
        async with engine.connect() as conn:
            assert await zone_stock.stored(conn) == await zone_stock.recount(conn)
            projected = {k: n for k, n in (await zone_stock.stored(conn)).items() if k[0] == site}
            assert projected == await replayed(conn, site)
            on_hand = await replenish_on_hand(conn, site)  # the restocking's view: the projection
            assert on_hand == {(loc, sku): float(n) for (_, loc, sku), n in projected.items()}
            zones = ["cold-1", "cold-2", "dock"]
            fast = {z: limits.skus for z, limits in (await product_limits(conn, site, zones)).items()}
            assert fast == await scanned_limits(conn, site, zones)
    finally:
        await engine.dispose()


@settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(seed=st.integers(0, 2**32 - 1))
def test_zone_products_equal_a_recount(db_url: str, seed: int) -> None:
    asyncio.run(_example(db_url, random.Random(seed)))
