"""What-if simulator throughput: SKUs x locations x days x Monte Carlo runs, one policy, one scenario row.

Run: ``.venv/bin/python bench/whatif.py [--skus 2000] [--locations 2] [--days 180] [--runs 200]
[--poisson-share 0] [--perishable-share 0.5] [--seed 3] [--workers 0]``.

A fixed-seed synthetic site: every SKU has a supplier (lead time 2-14 days, some with lead-time
spread), pack sizes 1-24, normal demand with the forecast's error sigma as the database loader
produces (``--poisson-share`` of the SKUs Poisson instead, for synthetic slow movers), half perishable
(shelf life 5-60 days), stock for a few days at each location, the cloud's default policy with
transfers first. ``seconds`` is the wall time of the simulation alone (model building excluded; it
is reported as ``setup_seconds``); ``cpu_seconds`` the CPU time of all its threads (chunks of runs go
to ``--workers`` threads, 0: one per core; each thread is single-threaded numpy, so on an otherwise idle
machine the wall time is about ``cpu_seconds / workers``; ``load_average_1m`` shows the other load);
``peak_rss_mb`` the process's peak resident memory. The target is
2000 x 2 x 180 x 200 in < 10 s and < 2 GB on the 2-core machine. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.whatif.engine import default_workers, simulate
from cloud.whatif.model import from_synthetic
from cloud.whatif.policies import policy_arrays
from cloud.whatif.scenario import Policy, Product, Simulation, Site, Supplier
from cloud.whatif.shocks import compile_shocks


def synthetic_site(
    skus: int, locations: int, poisson_share: float, perishable_share: float, seed: int
) -> Site:
    rng = np.random.default_rng(seed)
    suppliers = [
        Supplier(id=f"S{k}", lead_time_days=float(rng.integers(2, 15)), lead_time_std_days=float(k % 3))
        for k in range(20)
    ]
    products = []
    for n in range(skus):
        mean = [float(x) for x in rng.gamma(2.0, 5.0, size=locations).round(2)]
        poisson = rng.random() < poisson_share
        products.append(
            Product(
                sku=f"SKU{n:05d}",
                category=f"C{n % 10}",
                supplier=f"S{n % 20}",
                unit_cost=round(float(rng.uniform(0.5, 20)), 2),
                pack_size=float(rng.choice([1, 6, 12, 24])),
                shelf_life_days=float(rng.integers(5, 61)) if rng.random() < perishable_share else None,
                distribution="poisson" if poisson else "normal",
                demand_mean=mean,
                demand_std=None if poisson else [round(0.4 * m, 2) for m in mean],
                on_hand=[round(m * 5) for m in mean],
            )
        )
    return Site(
        id="bench", locations=[f"L{s}" for s in range(locations)], suppliers=suppliers, products=products
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--locations", type=int, default=2)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--poisson-share", type=float, default=0.0)
    parser.add_argument("--perishable-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="chunk threads (0: one per core)")
    args = parser.parse_args()
    start = time.perf_counter()
    site = synthetic_site(args.skus, args.locations, args.poisson_share, args.perishable_share, args.seed)
    model = from_synthetic(site, args.days).perishable_first()
    sim = Simulation(days=args.days, runs=args.runs, seed=args.seed)
    policy, plan = policy_arrays(model, Policy()), compile_shocks(model, [], args.days)
    setup = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    result = simulate(model, policy, plan, sim, workers=args.workers)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    load = os.getloadavg()[0]
    lanes = model.n_items * args.runs
    fill = 1.0 - result.per_run["short"].sum() / result.per_run["demand"].sum()
    print(f"{model.n_items} items x {args.runs} runs = {lanes} lanes x {args.days} days: {seconds:.2f} s")
    print(
        json.dumps(
            {
                "bench": "whatif",
                "skus": args.skus,
                "locations": args.locations,
                "days": args.days,
                "runs": args.runs,
                "lanes": lanes,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu_seconds, 3),
                "load_average_1m": round(load, 2),
                "cores": os.cpu_count(),
                "workers": args.workers or default_workers(),
                "setup_seconds": round(setup, 3),
                "lane_days_per_second": round(lanes * args.days / seconds),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "fill_rate": round(float(fill), 4),
                "target_met": seconds < 10.0,
            }
        )
    )


if __name__ == "__main__":
    main()
