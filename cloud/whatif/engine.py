"""The vectorised Monte Carlo engine: every (run, item) lane advances one day per numpy step.

State per lane (arrays of shape ``(R, I)``, runs x items): on hand in ``K`` FEFO lot buckets (quantity
and expiry day, oldest first), backlog, on order, in transit; receipts wait in ring buffers indexed by
arrival day. A day, for every lane at once:

1. cold-room failures spoil the lots of their zone;
2. receipts held by a stopped supplier or a closed route wait one more day;
3. purchase and transfer receipts join the lots (fresh purchases expire after the shelf life,
   transfers keep their lots' expiry);
4. lots whose (dynamic) expiry has come are written off;
5. on a review day, the cloud's rule (:mod:`cloud.replenish.proposals`): position = on hand + on order
   + in transit - reserved - backlog; a need when position minus one review period of forecast is at or
   below the reorder point; transfers first from locations above their order-up-to level (largest
   surplus first, most urgent need first), the rest purchased, rounded by
   :func:`cloud.replenish.policy.round_order_quantities`, ordered on the date counted back from the need
   date, arriving after a sampled lead time (plus the approval delay);
6. demand is drawn (normal with the forecast's error sigma, or Poisson) and picked FEFO; what cannot
   be served is lost or backordered.

Common random numbers: demand and lead-time draws come from two streams seeded by the scenario and
drawn for every lane every day whether used or not, so two policies see the same demand.
Only per-lane totals and per-day aggregates are kept, never full paths.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from cloud.replenish.policy import MAX_PLAN_DAYS, round_order_quantities
from cloud.whatif.lots import NEVER, LotBuckets
from cloud.whatif.model import SiteModel
from cloud.whatif.policies import PolicyArrays
from cloud.whatif.scenario import Simulation
from cloud.whatif.shocks import ShockPlan

F32 = NDArray[np.float32]
EPS = 1e-6
INF = np.float32(np.inf)
FLOAT32_TOLERANCE = 1e-4  # packs: order rounding in float32 (the cloud's float64 uses 1e-9)
TOTALS = ("demand", "short", "served", "stockout_days", "inventory", "expired", "spend", "ordered")


@dataclass(slots=True)
class SimResult:
    """Totals per lane reduced to per run (``(R,)``) and per item (summed over runs, ``(I,)``)."""

    days: int
    runs: int
    per_run: dict[str, NDArray[np.float64]]
    per_item: dict[str, NDArray[np.float64]]
    daily_inventory_value: NDArray[np.float64]  # (days,) mean over runs, end of day
    daily_stockouts: NDArray[np.float64]  # (days,) items out of stock, mean over runs
    active_items: int  # items with forecast demand (the denominator of the cycle service level)


def normal_table(bits: int = 16) -> F32:
    """Standard normal quantiles at the midpoints of ``2**bits`` equal-probability cells.

    Indexing it with uniform random integers draws normals about 5x faster than numpy's ziggurat;
    the cells are fine enough (tails cut at about 4.2 sigma) for demand.
    """
    n = 1 << bits
    dist = NormalDist()
    return np.array([dist.inv_cdf((k + 0.5) / n) for k in range(n)], dtype=np.float32)


_NORMAL = normal_table()
_COARSE_NORMAL = normal_table(8)  # lead-time noise: rounded to whole days anyway


def _any_column(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask.any(axis=1)`` for a few columns: numpy's reduction over a short inner axis is slow."""
    out = mask[:, 0].copy()
    for col in range(1, mask.shape[1]):
        out |= mask[:, col]
    return out


def _min_column(values: F32) -> F32:
    """``values.min(axis=1)`` for a few columns (as :func:`_any_column`)."""
    out = values[:, 0].copy()
    for col in range(1, values.shape[1]):
        np.minimum(out, values[:, col], out=out)
    return out


class Engine:
    """One (scenario, policy) simulation; :meth:`run` returns its :class:`SimResult`."""

    def __init__(
        self,
        model: SiteModel,
        policy: PolicyArrays,
        plan: ShockPlan,
        sim: Simulation,
        *,
        runs: int | None = None,
        chunk: int = 0,
    ) -> None:
        """``runs``/``chunk``: this engine simulates runs chunk of a larger batch (see :func:`simulate`)."""
        self.m, self.p, self.plan, self.sim = model, policy, plan, sim
        self.R, self.I, self.K, self.days = runs or sim.runs, model.n_items, sim.lot_buckets, sim.days
        self.S = len(model.locations)
        items = model.items
        self.cost = np.array([i.unit_cost for i in items], dtype=np.float32)
        self.pack = np.array([i.pack_size for i in items], dtype=np.float32)
        self.moq = np.array([i.moq for i in items], dtype=np.float32)
        self.reserved = np.array([i.reserved for i in items], dtype=np.float32)
        self.any_reserved = bool(self.reserved.any())
        self.lead = np.array([i.lead_time_days for i in items], dtype=np.float32)
        self.lead_std = np.array([i.lead_time_std_days for i in items], dtype=np.float32)
        self.has_supplier = np.array([i.supplier is not None for i in items], dtype=bool)
        self.demand_std = np.array([i.demand_std for i in items], dtype=np.float32)
        self.mean_path = np.ascontiguousarray(model.mean_path.T, dtype=np.float32)  # (days, I)
        self.shelf = np.minimum(model.shelf_life, float(NEVER)).astype(np.float32)
        self.poisson = np.flatnonzero(model.poisson)
        self.normal = np.flatnonzero(~model.poisson)
        self.random = sim.randomness
        self.lead_random = sim.randomness and bool((self.lead_std > 0).any())
        entropy = sim.seed if chunk == 0 else [sim.seed, chunk]  # chunk c: the same draws for every policy
        demand_seed, lead_seed = np.random.SeedSequence(entropy).spawn(2)
        self.rng_demand = np.random.default_rng(demand_seed)
        self.rng_lead = np.random.default_rng(lead_seed)
        self.tlt = model.transfer_lead_time_days
        mean = policy.demand_mean
        self.inv_mean = np.where(mean > 0, 1.0 / np.where(mean > 0, mean, 1.0), 0.0).astype(np.float32)
        self.review_demand = (mean * policy.review).astype(np.float32)
        self.H = self._pipeline_days()
        self.lane_index = np.arange(self.R * self.I, dtype=np.int64)
        self.Ht = self.tlt + self.plan.longest_delay + 2
        self._allocate()

    # --- setup ----------------------------------------------------------------------------------

    def _pipeline_days(self) -> int:
        lead = float((self.lead * self.plan.lead_factor.max(axis=0, initial=1.0)).max(initial=1.0))
        spread = 4.0 * float(self.lead_std.max(initial=0.0))
        review = int(self.p.review.max(initial=1))
        first = max((r.day for r in self.m.receipts), default=0)
        return (
            math.ceil(lead + spread)
            + review
            + self.sim.approval_delay_days
            + self.plan.longest_delay
            + first
            + 3
        )

    def _allocate(self) -> None:
        shape = (self.R, self.I)
        z = lambda: np.zeros(shape, dtype=np.float32)  # noqa: E731
        n_loc = self.S
        perishable = self.m.perishable_skus()
        self.P = int(perishable.sum()) * n_loc
        if not perishable[: self.P // n_loc].all():
            raise ValueError(
                "the engine needs the model's perishable SKUs first (SiteModel.perishable_first)"
            )
        self.lots = LotBuckets(self.K, (self.R, self.P))
        self.oh, self.backlog, self.on_order, self.in_transit = z(), z(), z(), z()
        self.pipe = np.zeros((self.H, *shape), dtype=np.float32)
        self.tr_q = np.zeros((self.Ht, *shape), dtype=np.float32)
        self.tr_e = np.full((self.Ht, *shape), NEVER, dtype=np.float32)
        self.tot = {name: z() for name in TOTALS}
        self.daily_value = np.zeros(self.days)
        self.daily_out = np.zeros(self.days)
        self.lots.seed(self.m.lots[: self.P])
        self.oh[:] = np.array([sum(q for q, _ in lots) for lots in self.m.lots], dtype=np.float32)
        for r in self.m.receipts:
            if r.transfer:
                slot = min(r.day, self.Ht - 1)
                self.tr_q[slot, :, r.item] += r.quantity
                self.tr_e[slot, :, r.item] = min(r.expires_in_days, float(NEVER))
                self.in_transit[:, r.item] += r.quantity
            else:
                self.pipe[min(r.day, self.H - 1), :, r.item] += r.quantity
                self.on_order[:, r.item] += r.quantity
        self.fresh_expiry = np.minimum(self.shelf[: self.P], NEVER)
        # Bounds as full arrays: numpy's maximum/minimum against a scalar skip their SIMD loop and
        # cost about 8x the same call against a contiguous array of the bound.
        self.zeros, self.ones = z(), np.ones(shape, dtype=np.float32)
        self.last_slot = np.full(shape, self.H - 1, dtype=np.float32)
        self.max_plan = np.full(shape, MAX_PLAN_DAYS, dtype=np.float32)

    # --- the day ----------------------------------------------------------------------------------

    def run(self) -> SimResult:
        for t in range(self.days):
            self._day(t)
        return self._result()

    def _day(self, t: int) -> None:
        lead_z = self._normals(self.rng_lead, self.oh.shape, coarse=True) if self.lead_random else None
        for day, items in self.plan.spoil:
            if day == t:
                self._spoil(items)
        self._hold(t)
        slot, tslot = t % self.H, t % self.Ht
        self._receive(self.pipe[slot], t + self.fresh_expiry)
        self.on_order -= self.pipe[slot]
        self.pipe[slot] = 0
        if np.count_nonzero(self.tr_q[tslot]):
            self._receive(self.tr_q[tslot], self.tr_e[tslot][:, : self.P])
            self.in_transit -= self.tr_q[tslot]
            self.tr_q[tslot] = 0
            self.tr_e[tslot] = NEVER
        if self.P:
            lost = self.lots.expire(t)
            self.oh[:, : self.P] -= lost
            self.tot["expired"][:, : self.P] += lost
        review = (t % self.p.review) == 0
        if review.any():
            self._review(t, review, lead_z)
        for day, items, cover in self.plan.prebuy:
            if day == t:
                self._prebuy(t, items, cover, lead_z)
        self._demand(t)
        if self.P:
            self.lots.compact()

    @staticmethod
    def _normals(rng: np.random.Generator, shape: tuple[int, ...], *, coarse: bool = False) -> F32:
        size = math.prod(shape)
        if coarse:
            words = rng.bit_generator.random_raw((size + 7) // 8)
            return _COARSE_NORMAL.take(words.view(np.uint8)[:size]).reshape(shape)
        words = rng.bit_generator.random_raw((size + 3) // 4)
        return _NORMAL.take(words.view(np.uint16)[:size]).reshape(shape)

    def _spoil(self, items: NDArray[np.bool_]) -> None:
        lost = self.lots.spoil(items[: self.P])
        perishable = np.flatnonzero(items[: self.P])
        self.oh[:, perishable] = 0
        self.tot["expired"][:, perishable] += lost
        others = self.P + np.flatnonzero(items[self.P :])  # stock without lots spoils too
        self.tot["expired"][:, others] += self.oh[:, others]
        self.oh[:, others] = 0

    def _hold(self, t: int) -> None:
        """Receipts due today at a stopped supplier or closed route move to tomorrow."""
        held = (self.plan.supplier_stopped_until[t] > t) | self.plan.closed[t]
        if held.any():
            now, nxt = t % self.H, (t + 1) % self.H
            self.pipe[nxt][:, held] += self.pipe[now][:, held]
            self.pipe[now][:, held] = 0
        closed = self.plan.closed[t]
        if closed.any():
            now, nxt = t % self.Ht, (t + 1) % self.Ht
            self.tr_q[nxt][:, closed] += self.tr_q[now][:, closed]
            self.tr_e[nxt][:, closed] = np.minimum(self.tr_e[nxt][:, closed], self.tr_e[now][:, closed])
            self.tr_e[now][:, closed] = NEVER
            self.tr_q[now][:, closed] = 0

    def _receive(self, arriving: F32, expiry: F32) -> None:
        self.oh += arriving
        if self.P:
            self.lots.receive(arriving[:, : self.P], expiry)

    # --- replenishment ----------------------------------------------------------------------------

    def _review(self, t: int, review: NDArray[np.bool_], lead_z: F32 | None) -> None:
        p = self.p
        position = self.oh + self.on_order
        position += self.in_transit
        if self.sim.unmet == "backorder":
            position -= self.backlog
        if self.any_reserved:
            position -= self.reserved
        if p.fixed_quantity:
            short = (position <= p.min_qty + EPS) & (review & self.has_supplier)
            n = np.floor((p.min_qty - position) / p.order_quantity) + 1
            self._order(t, (n * p.order_quantity) * short, np.zeros_like(position), lead_z, rounded=True)
            return
        needs = (position - self.review_demand <= p.min_qty + EPS) & review
        need = (p.max_qty - position) * needs
        # Days until the position falls below safety stock at the forecast rate (the cloud's need_date).
        need_days = np.floor((position - p.safety_stock) * self.inv_mean)
        np.maximum(need_days, self.zeros, out=need_days)
        np.minimum(need_days, self.max_plan, out=need_days)
        if p.transfer_first and self.S > 1:
            self._transfers(t, review, needs, need, need_days)
        offset = need_days - self.lead
        np.maximum(offset, self.zeros, out=offset)
        # An order placed later tops up a position that has dropped by the demand until then.
        wanted = (need + p.demand_mean * offset) * ((need > EPS) & self.has_supplier)
        self._order(t, wanted, offset, lead_z, rounded=False)

    def _order(self, t: int, wanted: F32, offset: F32, lead_z: F32 | None, *, rounded: bool) -> None:
        """Place the orders of every lane at once (dense: most lanes order on most review days)."""
        qty = wanted if rounded else round_order_quantities(wanted, self.pack, self.moq, FLOAT32_TOLERANCE)
        lead = self.lead * self.plan.lead_factor[t]
        if lead_z is None:
            lead = np.maximum(np.rint(lead), 1)  # per item: small
        else:
            lead = lead + self.lead_std * lead_z
            np.rint(lead, out=lead)
            np.maximum(lead, self.ones, out=lead)
        stopped = (self.plan.supplier_stopped_until[t] - t).astype(np.float32)  # waits for the restart
        due = offset  # the caller's scratch array: reused in place
        if self.sim.approval_delay_days:
            due += self.sim.approval_delay_days
        np.maximum(due, stopped, out=due)
        due += lead
        np.minimum(due, self.last_slot, out=due)
        # Every lane at once (most order on a review day): its arrival slot in the ring, then one
        # scatter-add; a lane appears once, so a plain fancy += is exact (0 where nothing is ordered).
        due += t % self.H
        due -= (due >= self.H) * np.float32(self.H)  # float32 throughout: no int64 temporary
        # Only the lanes that order (about 2 in 3 on a review day): the scatter is the costly part.
        flat_qty = qty.reshape(-1)
        lanes = np.flatnonzero(flat_qty != 0)
        target = due.reshape(-1)[lanes].astype(np.int64)
        target *= qty.size
        target += lanes
        self.pipe.reshape(-1)[target] += flat_qty[lanes]
        self.on_order += qty
        self.tot["spend"] += qty * (self.cost * self.plan.price_factor[t])
        self.tot["ordered"] += qty

    def _prebuy(self, t: int, items: NDArray[np.bool_], cover: float, lead_z: F32 | None) -> None:
        extra = cover * self.p.demand_mean * (items & self.has_supplier)
        wanted = np.broadcast_to(extra, self.oh.shape).astype(np.float32)
        self._order(t, wanted, np.zeros_like(self.oh), lead_z, rounded=False)

    def _transfers(
        self, t: int, review: NDArray[np.bool_], needs: NDArray[np.bool_], need: F32, need_days: F32
    ) -> None:
        """Move surplus (on hand above the order-up-to level) to short locations of the same SKU;
        what a location receives is taken off its ``need`` (in place: only the rows that move)."""
        open_ = ~self.plan.closed[t]
        free = self.oh - self.reserved - self.p.max_qty
        free *= (free > EPS) & ~needs
        surplus = free * (review & open_)  # item-level mask: broadcast, no extra full-size pass
        wanted = need * open_
        np.maximum(wanted, self.zeros, out=wanted)  # a position above the max is no need (never negative)
        shape = (self.R * (self.I // self.S), self.S)
        sur, want = surplus.reshape(shape), wanted.reshape(shape)
        if self.S == 2:
            self._transfers_between_two(t, sur, want, need.reshape(shape))
            return
        rows = np.flatnonzero(_any_column(sur > EPS) & _any_column(want > EPS))
        if rows.size == 0:
            return
        sur, want = sur[rows], want[rows]
        # The cloud's order of needs: earliest need date, then the largest need, then the location.
        days = need_days.reshape(shape)[rows].astype(np.float64)
        urgency = np.where(want > EPS, days * 1e9 - want, np.inf)
        order = np.argsort(urgency, axis=1, kind="stable")
        into, out = np.zeros_like(want), np.zeros_like(want)
        lanes = np.arange(rows.size)
        for j in range(self.S):
            dest = order[:, j]
            for _ in range(self.S - 1):
                src = np.argmax(sur, axis=1)  # the largest surplus first
                take = np.minimum(want[lanes, dest], sur[lanes, src])
                sur[lanes, src] -= take
                want[lanes, dest] -= take
                into[lanes, dest] += take
                out[lanes, src] += take
        need.reshape(shape)[rows] -= into
        self._ship(t, rows, out, into)

    def _transfers_between_two(self, t: int, sur: F32, want: F32, need: F32) -> None:
        """Two locations: a short one takes from the other's surplus (the greedy rule, in closed form:
        a location that needs has no surplus, so at most one direction per SKU and run)."""
        into = np.empty_like(want)
        np.minimum(want[:, 0], sur[:, 1], out=into[:, 0])
        np.minimum(want[:, 1], sur[:, 0], out=into[:, 1])
        moving = into > EPS  # one contiguous comparison, then the cheap bool columns
        rows = np.flatnonzero(moving[:, 0] | moving[:, 1])
        if rows.size:
            moved = into[rows]
            need[rows] -= moved
            self._ship(t, rows, moved[:, ::-1].copy(), moved)

    def _ship(self, t: int, rows: NDArray[np.intp], out: F32, into: F32) -> None:
        base = (rows * self.S)[:, None] + np.arange(self.S)
        src, amount = base[out > 0], out[out > 0]
        self.oh.reshape(-1)[src] -= amount
        per_row = np.full(out.shape, NEVER, dtype=np.float32)
        perishable = (src % self.I) < self.P
        if perishable.any():
            lanes = src[perishable]
            lanes = (lanes // self.I) * self.P + lanes % self.I  # flat index into the (R, P) buckets
            earliest = np.full(src.shape, NEVER, dtype=np.float32)
            earliest[perishable] = self.lots.take_from(lanes, amount[perishable])
            per_row[out > 0] = earliest
        row_expiry = np.broadcast_to(_min_column(per_row)[:, None], out.shape)
        dst = base[into > 0]
        slot = (t + self.tlt) % self.Ht
        self.tr_q[slot].reshape(-1)[dst] += into[into > 0]
        self.tr_e[slot].reshape(-1)[dst] = np.minimum(self.tr_e[slot].reshape(-1)[dst], row_expiry[into > 0])
        self.in_transit.reshape(-1)[dst] += into[into > 0]

    # --- demand -----------------------------------------------------------------------------------

    def _draw(self, t: int) -> F32:
        lam = self.mean_path[t] * self.plan.demand_factor[t]
        if not self.random:
            return np.broadcast_to(lam, self.oh.shape).copy()
        d = self._normals(self.rng_demand, self.oh.shape)  # drawn for every lane: common random numbers
        d *= self.demand_std
        d += lam
        np.maximum(d, self.zeros, out=d)
        if self.poisson.size:
            d[:, self.poisson] = self.rng_demand.poisson(lam[self.poisson], size=(self.R, self.poisson.size))
        return d

    def _demand(self, t: int) -> None:
        d = self._draw(t)
        tot = self.tot
        if self.sim.unmet == "backorder":
            short = np.maximum(d - np.maximum(self.oh - self.backlog, 0), 0)
            want = self.backlog + d
            served = np.minimum(self.oh, want)
            self.backlog = want - served
            out = self.backlog > EPS
        else:
            served = np.minimum(self.oh, d)
            short = d - served
            out = short > EPS
        if self.P:
            self.lots.pick(served[:, : self.P])
        self.oh -= served
        tot["demand"] += d
        tot["short"] += short
        tot["served"] += served
        tot["stockout_days"] += out
        tot["inventory"] += self.oh
        self.daily_value[t] = float(self.oh.sum(axis=0) @ self.cost) / self.R
        self.daily_out[t] = np.count_nonzero(out) / self.R

    def _result(self) -> SimResult:
        per_run = {name: v.sum(axis=1, dtype=np.float64) for name, v in self.tot.items()}
        per_item = {name: v.sum(axis=0, dtype=np.float64) for name, v in self.tot.items()}
        cost = self.cost.astype(np.float64)
        per_run["cogs"] = self.tot["served"].astype(np.float64) @ cost
        per_run["inventory_value"] = self.tot["inventory"].astype(np.float64) @ cost / self.days
        per_run["expired_value"] = self.tot["expired"].astype(np.float64) @ cost
        active = int((self.mean_path.sum(axis=0) > 0).sum())
        return SimResult(
            days=self.days,
            runs=self.R,
            per_run=per_run,
            per_item=per_item,
            daily_inventory_value=self.daily_value,
            daily_stockouts=self.daily_out,
            active_items=active,
        )


# About 64k lanes at a time: the per-lane arrays of one chunk (~250 bytes a lane) then stay in the
# processor's cache between the day's numpy passes, which are otherwise bound by memory bandwidth.
LANES_PER_CHUNK = 1 << 16


def default_workers() -> int:
    """One chunk thread per core this process may use (numpy's passes release the GIL)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def simulate(
    model: SiteModel, policy: PolicyArrays, plan: ShockPlan, sim: Simulation, *, workers: int = 0
) -> SimResult:
    """All runs, in chunks of runs (chunk ``c`` draws from the same seed under every policy).

    Chunks are independent, so ``workers`` threads (0: one per core) run them side by side; the
    result does not depend on the number of workers (each chunk has its own seed, parts are joined
    in chunk order).
    """
    per_chunk = max(1, LANES_PER_CHUNK // max(1, model.n_items))
    sizes = [min(per_chunk, sim.runs - start) for start in range(0, sim.runs, per_chunk)]
    threads = min(workers or default_workers(), len(sizes))

    def run_chunk(c: int) -> SimResult:
        return Engine(model, policy, plan, sim, runs=sizes[c], chunk=c).run()

    if threads <= 1:
        parts = [run_chunk(c) for c in range(len(sizes))]
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="whatif") as pool:
            parts = list(pool.map(run_chunk, range(len(sizes))))
    if len(parts) == 1:
        return parts[0]
    weights = np.array(sizes, dtype=np.float64) / sim.runs
    return SimResult(
        days=sim.days,
        runs=sim.runs,
        per_run={k: np.concatenate([p.per_run[k] for p in parts]) for k in parts[0].per_run},
        per_item={k: np.sum([p.per_item[k] for p in parts], axis=0) for k in parts[0].per_item},
        daily_inventory_value=np.sum(
            [w * p.daily_inventory_value for w, p in zip(weights, parts, strict=True)], axis=0
        ),
        daily_stockouts=np.sum([w * p.daily_stockouts for w, p in zip(weights, parts, strict=True)], axis=0),
        active_items=parts[0].active_items,
    )
