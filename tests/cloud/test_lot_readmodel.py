"""The lot-evidence read model equals the full recomputation (cloud.lots.service, the oracle) on
random histories, SQLite and PostgreSQL.

Each example registers products, lots and items, ingests shuffled movements and zone readings in
several batches (some arriving late, some future-dated relative to a check), changes master data
midway, and at each check time runs the catch-up (:func:`refresh`) and compares ``/lots`` (plain,
per site, expiring) and ``/fefo`` as served from the read model with the oracle at that time.
Examples accumulate in one database, so every comparison also covers the earlier examples' lots,
whose rows are then only shifted in time.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_lots_api import move, reading

from cloud.admin import create_edge_async
from cloud.core import db
from cloud.core.migrate import upgrade_to_head
from cloud.ingest.service import ingest_batch
from cloud.lots import evidence as lots_evidence
from cloud.lots import pages as pages
from cloud.lots import service as oracle
from cloud.lots.readmodel import ReadModelOptions, refresh
from cloud.masterdata import records as masterdata_records
from cloud.masterdata import service as md
from shelfsense.contract import Batch

NOW_OPTIONS = ReadModelOptions(min_refresh_s=0.0)
ZONES = {"site-1": ["cold-1", "cold-2", "dock"], "site-2": ["s2-cold"]}
H = 3600.0
EXAMPLE_SPAN = 100 * H  # each example's history after the previous one's: the clock only advances
START = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=12 * EXAMPLE_SPAN)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-6)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return abs((a - b).total_seconds()) < 1e-3
    return bool(a == b)


def _near_tie(rows: list[dict[str, Any]], row: dict[str, Any]) -> bool:
    """Another lot of the product expires within a millisecond: float noise may order them either way."""
    return any(
        other["lot_id"] != row["lot_id"]
        and other["sku"] == row["sku"]
        and other["effective_expiry"] is not None
        and row["effective_expiry"] is not None
        and _close(other["effective_expiry"], row["effective_expiry"])
        for other in rows
    )


def assert_same(expected: list[dict[str, Any]], served: list[dict[str, Any]], what: str) -> None:
    assert [r["lot_id"] for r in served] == [r["lot_id"] for r in expected] or all(
        _close(a["effective_expiry"], b["effective_expiry"]) for a, b in zip(expected, served, strict=True)
    ), what
    by_id = {r["lot_id"]: r for r in served}
    for want in expected:
        got = by_id[want["lot_id"]]
        for name, value in want.items():
            if name == "expiry_source" and _close(
                want["dynamic_expiry"], lots_evidence.printed_datetime(want["expiry"])
            ):
                continue  # label and dynamic date equal up to float noise: either may "win"
            if name == "fefo_rank" and _near_tie(expected, want):
                continue
            assert _close(value, got[name]), f"{what}: {want['lot_id']}.{name}: {value!r} != {got[name]!r}"


class World:
    """One database for all examples; each example uses fresh names and edges."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.examples = itertools.count()
        self.seq: dict[str, int] = {}
        self.migrated = False


async def _post(engine: Any, world: World, site: str, edge: str, events: list[dict[str, Any]]) -> None:
    first = world.seq.get(edge, 1)
    body = {
        "v": 1,
        "edge_id": edge,
        "created_at": datetime.now(UTC).isoformat(),
        "events": [{"seq": first + i, "event": e} for i, e in enumerate(events)],
    }
    world.seq[edge] = first + len(events)
    result = await ingest_batch(engine, Batch.model_validate(body), {})
    assert result.ack.accepted == len(events)


async def _compare(engine: Any, now: datetime) -> None:
    result = await refresh(engine, now=now, options=NOW_OPTIONS)
    assert result.marks < NOW_OPTIONS.max_marks  # everything due was folded in
    async with engine.connect() as conn:
        for site in (None, "site-1", "site-2"):
            served, total = await pages.list_lots(conn, site=site, now=now)
            expected = await oracle.list_lots(conn, site=site, now=now)
            assert total == len(expected)
            assert_same(expected, served, f"lots site={site} at {now}")
            served, _ = await pages.list_lots(conn, site=site, now=now, expiring_within_days=4)
            assert_same(
                await oracle.list_lots(conn, site=site, now=now, expiring_within_days=4), served, "expiring"
            )
            products, following = await pages.fefo(conn, site=site, now=now)
            assert following is None
            expected_fefo = await oracle.fefo(conn, site=site, now=now)
            assert [p["product"] for p in products] == [p["product"] for p in expected_fefo]
            for want, got in zip(expected_fefo, products, strict=True):
                rows = {
                    r["lot_id"]: r for r in await oracle.list_lots(conn, product=want["product"], now=now)
                }
                for w, g in zip(want["lots"], got["lots"], strict=True):
                    if w["lot_id"] != g["lot_id"]:  # only a float-noise tie may swap two lots
                        assert _close(w["effective_expiry"], g["effective_expiry"])
                        continue
                    for name in w:
                        if name in ("fefo_rank", "expiry_source") and _near_tie(
                            list(rows.values()), rows[w["lot_id"]]
                        ):
                            continue
                        if name == "expiry_source" and _close(
                            w["dynamic_expiry"], lots_evidence.printed_datetime(w["expiry"])
                        ):
                            continue
                        assert _close(w[name], g[name]), f"fefo {w['lot_id']}.{name}"


async def _example(world: World, rnd: random.Random) -> None:
    n = next(world.examples)
    T0 = START + timedelta(seconds=n * EXAMPLE_SPAN)
    engine = db.create_engine(world.url)
    try:
        if not world.migrated:
            await upgrade_to_head(engine)
            world.migrated = True
        edges = {site: (await create_edge_async(engine, site, f"x{n}-{site}"))[0] for site in ZONES}
        days = rnd.sample(range(1, 30), 8)  # distinct printed dates: no float-noise ties on labels
        products, lots, items = [], [], []
        for p in range(rnd.randint(1, 2)):
            sku = f"X{n}P{p}"
            products.append(
                {
                    "sku": sku,
                    "shelf_life_days": rnd.choice([None, 4, 10, 20]),
                    "storage_temp_min_c": 2,
                    "storage_temp_max_c": 8,
                    "shelf_life_model": rnd.choice(["arrhenius", "q10"]),
                }
            )
            for lot in range(rnd.randint(1, 3)):
                code = f"L{lot}"
                expiry = rnd.choice([None, (T0 + timedelta(days=days.pop())).date().isoformat()])
                lots.append({"sku": sku, "lot_code": code, "expiry": expiry})
                for i in range(rnd.randint(0, 3)):
                    items.append(
                        {"epc": f"3034{n:06X}{p:02X}{lot:02X}{i:010X}", "sku": sku, "lot_code": code}
                    )
        await md.import_records(engine, "products", masterdata_records.parse_rows("products", products))
        await md.import_records(engine, "lots", masterdata_records.parse_rows("lots", lots))
        await md.import_records(engine, "items", masterdata_records.parse_rows("items", items))
        events: dict[str, list[dict[str, Any]]] = {site: [] for site in ZONES}
        for item in items:
            site = rnd.choice(list(ZONES))
            times = sorted(rnd.uniform(0, 60 * H) for _ in range(rnd.randint(0, 4)))
            for k, t in enumerate(times):
                leaving = k == len(times) - 1 and rnd.random() < 0.2
                to = None if leaving else rnd.choice(ZONES[site])
                events[site].append(move(T0 + timedelta(seconds=t), item["epc"], to))
        for site, zones in ZONES.items():
            for zone in zones:
                for sensor in range(rnd.randint(0, 2)):
                    for _ in range(rnd.randint(0, 25)):
                        value = round(rnd.uniform(-4, 25) * 2) / 2
                        moment = T0 + timedelta(seconds=rnd.uniform(-H, 70 * H))
                        events[site].append(reading(moment, value, zone, f"{zone}-{sensor}"))
        checks = [
            *sorted(T0 + timedelta(hours=rnd.uniform(0, 75)) for _ in range(2)),
            T0 + timedelta(hours=90),
        ]
        for site, site_events in events.items():
            rnd.shuffle(site_events)
            cut = len(site_events) // 2
            await _post(engine, world, site, edges[site], site_events[:cut]) if cut else None
            await _compare(engine, checks[0])
            if products and rnd.random() < 0.5:  # master data changes midway
                products[0]["shelf_life_days"] = rnd.choice([None, 7])
                await md.import_records(
                    engine, "products", masterdata_records.parse_rows("products", products[:1])
                )
            if site_events[cut:]:
                await _post(engine, world, site, edges[site], site_events[cut:])
        for moment in checks[1:]:
            await _compare(engine, moment)
    finally:
        await engine.dispose()


# No shrinking: each example adds to the database and advances the clock; a failure reports its seed.
# Shared with tests/cloud/test_retention.py, whose examples accumulate the same way.
ACCUMULATING_EXAMPLES = settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)


@pytest.mark.parametrize("examples", [4])
@ACCUMULATING_EXAMPLES
@given(seed=st.integers(0, 2**32 - 1))
def test_read_model_equals_full_recomputation(db_url: str, examples: int, seed: int) -> None:
    world = _WORLDS.setdefault(db_url, World(db_url))
    asyncio.run(_example(world, random.Random(seed)))


_WORLDS: dict[str, World] = {}
