"""Continuous stocktake reconciliation speed: 100k tagged items over 500 locations.

Run: ``.venv/bin/python bench/reconcile.py [--items N] [--locations L] [--repeat R] [--store]``.

The book puts N items on L RFID-covered locations. In the window, readers see 97 % of the items
at their book location, 1 % at a neighbouring location (misplaced), 0.5 % at both (cross-reads),
2 % not at all, plus 0.5 % foreign tags; one location's reader is silent (no coverage) and every
location has a read-rate history. The pure :func:`cloud.stocktake.reconcile.reconcile` is timed
(best of R), and its classification is checked against the construction. ``--store`` also times
one full stored run (load, reconcile, persist) on a temporary SQLite database. The last line is
one JSON object with ``items``, ``locations``, ``seconds`` (the pure reconcile) for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db
from cloud.stocktake.reconcile import ReconcileInput, ReconcileParams, reconcile
from cloud.users import tables as users_db

K = 3


def scenario(items: int, locations: int, seed: int = 7) -> tuple[ReconcileInput, dict[str, int]]:
    rng = random.Random(seed)
    locs = [f"loc-{n:04d}" for n in range(locations)]
    silent = locs[-1]
    book_epcs = [f"30340000{n:016X}" for n in range(items)]
    book_locs = [locs[n % locations] for n in range(items)]
    obs: dict[tuple[str, str], int] = {}
    expected = {"misplaced": 0, "missing": 0, "unknown": 0}
    streaks: dict[str, int] = {}
    for epc, loc in zip(book_epcs, book_locs, strict=True):
        if loc == silent:
            streaks[epc] = K - 1  # no coverage: must not advance to "missing"
            continue
        roll = rng.random()
        other = locs[(locs.index(loc) + 1) % (locations - 1)] if roll < 0.015 else None
        if roll < 0.01:  # misplaced
            obs[(epc, other or loc)] = rng.randint(1, 9)
            expected["misplaced"] += 1
        elif roll < 0.015:  # cross-read: seen at home and next door
            obs[(epc, loc)] = 5
            obs[(epc, other or loc)] = 1
        elif roll < 0.035:  # unseen; a third of them already unseen K-1 windows -> missing now
            if rng.random() < 1 / 3:
                streaks[epc] = K - 1
                expected["missing"] += 1
        else:
            obs[(epc, loc)] = rng.randint(1, 9)
    for n in range(items // 200):
        obs[(f"E2800000{n:016X}", locs[n % (locations - 1)])] = 1
        expected["unknown"] += 1
    history = {loc: [0.96, 0.97, 0.95, 0.97] for loc in locs}
    data = ReconcileInput(
        book_epcs=book_epcs,
        book_locations=book_locs,
        obs_epcs=[e for e, _ in obs],
        obs_locations=[loc for _, loc in obs],
        obs_counts=list(obs.values()),
        covered=set(locs),
        known_epcs=set(book_epcs),
        streaks=streaks,
        history=history,
    )
    return data, expected


async def stored_run(data: ReconcileInput, params: ReconcileParams) -> float:
    """Load, reconcile and persist one run on SQLite; seconds."""
    from cloud.core import db
    from cloud.core.migrate import upgrade_to_head
    from cloud.stocktake.service import StocktakeOptions, run_site

    end = datetime(2025, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        try:
            await upgrade_to_head(engine)
            async with db.write_transaction(engine) as conn:
                await conn.execute(users_db.sites.insert().values(site_id="site-1", created_at=end))
                await conn.execute(
                    masterdata_db.locations.insert(),
                    [
                        {
                            "site_id": "site-1",
                            "location_id": loc,
                            "kind": "shelf",
                            "rfid_coverage": True,
                            "name": "",
                            "updated_at": end,
                        }
                        for loc in sorted(data.covered)
                    ],
                )
                await conn.execute(
                    stock_db.stock_items.insert(),
                    [
                        {"site_id": "site-1", "epc": e, "location": loc, "present": True, "updated_at": end}
                        for e, loc in zip(data.book_epcs, data.book_locations, strict=True)
                    ],
                )
                seen_at = end - timedelta(seconds=30)
                await db.bulk_insert(
                    conn,
                    stock_db.tag_observations,
                    [
                        {
                            "site_id": "site-1",
                            "edge_id": "edge-1",
                            "seq": i + 1,
                            "epc": e,
                            "reader": "r",
                            "antenna": 1,
                            "rssi": None,
                            "first_seen": seen_at,
                            "last_seen": seen_at,
                            "count": n,
                            "location": loc,
                        }
                        for i, (e, loc, n) in enumerate(
                            zip(data.obs_epcs, data.obs_locations, data.obs_counts, strict=True)
                        )
                    ],
                )
            options = StocktakeOptions(enabled=False, interval_s=300, params=params)
            start = time.perf_counter()
            await run_site(engine, "site-1", end, options)
            return time.perf_counter() - start
        finally:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--locations", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", action="store_true", help="also time one stored run on SQLite")
    args = parser.parse_args()

    data, expected = scenario(args.items, args.locations)
    params = ReconcileParams(missing_after_windows=K)
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = reconcile(data, params)
        best = min(best, time.perf_counter() - start)
    counts = {kind: result.count(kind) for kind in ("missing", "misplaced", "unexpected", "unknown")}
    assert counts["misplaced"] == expected["misplaced"], (counts, expected)
    assert counts["missing"] == expected["missing"], (counts, expected)
    assert counts["unknown"] == expected["unknown"] and counts["unexpected"] == 0, (counts, expected)
    statuses = {r.status for r in result.locations}
    assert "no_coverage" in statuses, statuses
    print(
        f"reconcile: {args.items} items over {args.locations} locations in {best * 1000:.1f} ms "
        f"(best of {args.repeat}); {counts}"
    )
    report: dict[str, Any] = {
        "items": args.items,
        "locations": args.locations,
        "seconds": round(best, 4),
        "observations": len(data.obs_epcs),
        **counts,
    }
    if args.store:
        stored = asyncio.run(stored_run(data, params))
        print(f"stored run (SQLite: load + reconcile + persist): {stored:.2f} s")
        report["stored_run_seconds_sqlite"] = round(stored, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
