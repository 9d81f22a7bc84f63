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
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cloud.replenish.policy import MAX_PLAN_DAYS, round_order_quantities
from cloud.whatif.model import SiteModel
from cloud.whatif.policies import PolicyArrays
from cloud.whatif.scenario import Simulation
from cloud.whatif.shocks import ShockPlan

F32 = NDArray[np.float32]
EPS = 1e-6
INF = np.float32(np.inf)
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


def fefo_take(q: F32, e: F32, amount: F32) -> F32:
    """Take ``amount`` per lane from lot buckets ``q`` (K, lanes), oldest first, in place.

    Returns the earliest expiry among the buckets taken from (``inf`` where nothing was taken).
    """
    remaining = amount.copy()
    first = np.full(amount.shape, INF, dtype=np.float32)
    for k in range(q.shape[0]):
        take = np.minimum(q[k], remaining)
        first = np.where((take > 0) & (first == INF), e[k], first)
        q[k] -= take
        remaining -= take
    return first


def _fefo_take_dense(q: F32, amount: F32) -> None:
    remaining = amount.copy()
    take = np.empty_like(remaining)
    for k in range(q.shape[0]):
        np.minimum(q[k], remaining, out=take)
        q[k] -= take
        remaining -= take


class Engine:
    """One (scenario, policy) simulation; :meth:`run` returns its :class:`SimResult`."""

    def __init__(self, model: SiteModel, policy: PolicyArrays, plan: ShockPlan, sim: Simulation) -> None:
        self.m, self.p, self.plan, self.sim = model, policy, plan, sim
        self.R, self.I, self.K, self.days = sim.runs, model.n_items, sim.lot_buckets, sim.days
        self.S = len(model.locations)
        items = model.items
        self.cost = np.array([i.unit_cost for i in items], dtype=np.float32)
        self.pack = np.array([i.pack_size for i in items], dtype=np.float32)
        self.moq = np.array([i.moq for i in items], dtype=np.float32)
        self.reserved = np.array([i.reserved for i in items], dtype=np.float32)
        self.lead = np.array([i.lead_time_days for i in items], dtype=np.float32)
        self.lead_std = np.array([i.lead_time_std_days for i in items], dtype=np.float32)
        self.has_supplier = np.array([i.supplier is not None for i in items], dtype=bool)
        self.demand_std = np.array([i.demand_std for i in items], dtype=np.float32)
        self.mean_path = np.ascontiguousarray(model.mean_path.T, dtype=np.float32)  # (days, I)
        self.shelf = model.shelf_life.astype(np.float32)
        self.poisson = np.flatnonzero(model.poisson)
        self.normal = np.flatnonzero(~model.poisson)
        self.random = sim.randomness
        self.lead_random = sim.randomness and bool((self.lead_std > 0).any())
        demand_seed, lead_seed = np.random.SeedSequence(sim.seed).spawn(2)
        self.rng_demand = np.random.default_rng(demand_seed)
        self.rng_lead = np.random.default_rng(lead_seed)
        self.tlt = model.transfer_lead_time_days
        self.H = self._pipeline_days()
        self.Ht = self.tlt + self.plan.longest_delay + 2
        self._allocate()

    # --- setup ----------------------------------------------------------------------------------

    def _pipeline_days(self) -> int:
        lead = float((self.lead * self.plan.lead_factor.max(axis=0, initial=1.0)).max(initial=1.0))
        spread = 4.0 * float(self.lead_std.max(initial=0.0))
        review = int(self.p.review.max(initial=1))
        first = max((r.day for r in self.m.receipts), default=0)
        return int(math.ceil(lead + spread)) + review + self.sim.approval_delay_days + self.plan.longest_delay + first + 3

    def _allocate(self) -> None:
        shape = (self.R, self.I)
        z = lambda: np.zeros(shape, dtype=np.float32)  # noqa: E731
        self.q = np.zeros((self.K, *shape), dtype=np.float32)
        self.e = np.full((self.K, *shape), INF, dtype=np.float32)
        self.oh, self.backlog, self.on_order, self.in_transit = z(), z(), z(), z()
        self.pipe = np.zeros((self.H, *shape), dtype=np.float32)
        self.tr_q = np.zeros((self.Ht, *shape), dtype=np.float32)
        self.tr_e = np.full((self.Ht, *shape), INF, dtype=np.float32)
        self.tot = {name: z() for name in TOTALS}
        self.daily_value = np.zeros(self.days)
        self.daily_out = np.zeros(self.days)
        for i, lots in enumerate(self.m.lots):
            for k, (qty, expiry) in enumerate(sorted(lots, key=lambda lot: lot[1])):
                slot = min(k, self.K - 1)  # more lots than buckets: the youngest share the last one
                self.q[slot, :, i] += qty
                self.e[slot, :, i] = min(float(self.e[slot, 0, i]), expiry)
        self.oh[:] = self.q.sum(axis=0)
        for r in self.m.receipts:
            day = min(r.day, self.H - 1)
            if r.transfer:
                slot = min(r.day, self.Ht - 1)
                self.tr_q[slot, :, r.item] += r.quantity
                self.tr_e[slot, :, r.item] = r.expires_in_days
                self.in_transit[:, r.item] += r.quantity
            else:
                self.pipe[day, :, r.item] += r.quantity
                self.on_order[:, r.item] += r.quantity
        self.perishable = bool(np.isfinite(self.shelf).any() or np.isfinite(self.e).any())
        self.next_expiry = float(np.where(self.q > 0, self.e, INF).min(initial=INF))

    # --- the day ----------------------------------------------------------------------------------

    def run(self) -> SimResult:
        for t in range(self.days):
            self._day(t)
        return self._result()

    def _day(self, t: int) -> None:
        lead_z = self.rng_lead.standard_normal(self.oh.shape, dtype=np.float32) if self.lead_random else None
        for day, items in self.plan.spoil:
            if day == t:
                self._spoil(items)
        self._hold(t)
        slot, tslot = t % self.H, t % self.Ht
        self.on_order -= self.pipe[slot]
        self._receive(self.pipe[slot], np.broadcast_to(t + self.shelf, self.oh.shape))
        self.pipe[slot] = 0
        self.in_transit -= self.tr_q[tslot]
        self._receive(self.tr_q[tslot], self.tr_e[tslot])
        self.tr_q[tslot] = 0
        self.tr_e[tslot] = INF
        if self.perishable and t >= self.next_expiry:
            self._expire(t)
        review = (t % self.p.review) == 0
        if review.any():
            self._review(t, review, lead_z)
        for day, items, cover in self.plan.prebuy:
            if day == t:
                self._prebuy(t, items, cover, lead_z)
        self._demand(t)

    def _spoil(self, items: NDArray[np.bool_]) -> None:
        lost = self.q[:, :, items].sum(axis=0)
        self.q[:, :, items] = 0
        self.oh[:, items] = 0
        self.tot["expired"][:, items] += lost

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
            self.tr_q[now][:, closed] = 0

    def _receive(self, arriving: F32, expiry: F32) -> None:
        """Put arriving units in the first free bucket after the youngest occupied one."""
        flat = arriving.reshape(-1)
        idx = np.flatnonzero(flat > 0)
        if idx.size == 0:
            return
        qf, ef = self.q.reshape(self.K, -1), self.e.reshape(self.K, -1)
        qty, exp = flat[idx], np.ascontiguousarray(expiry).reshape(-1)[idx]
        occupied = qf[:, idx] > 0
        target = np.where(occupied.any(axis=0), self.K - np.argmax(occupied[::-1], axis=0), 0)
        full = target >= self.K
        if full.any():
            lanes = idx[full]
            order = np.argsort(qf[:, lanes] <= 0, axis=0, kind="stable")
            qf[:, lanes] = np.take_along_axis(qf[:, lanes], order, axis=0)
            ef[:, lanes] = np.take_along_axis(ef[:, lanes], order, axis=0)
            target[full] = (qf[:, lanes] > 0).sum(axis=0)
        merge = target >= self.K
        target = np.minimum(target, self.K - 1)
        old = ef[target, idx]
        ef[target, idx] = np.where(merge, np.minimum(old, exp), exp)  # merged: the earlier expiry
        qf[target, idx] += qty
        self.oh.reshape(-1)[idx] += qty
        self.next_expiry = min(self.next_expiry, float(exp.min()))

    def _expire(self, t: int) -> None:
        gone = np.where(self.e <= t, self.q, np.float32(0))
        self.q -= gone
        lost = gone.sum(axis=0)
        self.oh -= lost
        self.tot["expired"] += lost
        self.next_expiry = float(np.where(self.q > 0, self.e, INF).min(initial=INF))

    # --- replenishment ----------------------------------------------------------------------------

    def _review(self, t: int, review: NDArray[np.bool_], lead_z: F32 | None) -> None:
        p = self.p
        position = self.oh - self.backlog + self.on_order + self.in_transit - self.reserved
        if p.fixed_quantity:
            short = review & (position <= p.min_qty + EPS)
            n = np.floor((p.min_qty - position) / p.order_quantity) + 1
            qty = np.where(short & self.has_supplier, n * p.order_quantity, np.float32(0))
            self._order(t, qty.astype(np.float32), np.zeros_like(qty), lead_z)
            return
        projected = position - p.demand_mean * p.review
        needs = review & (projected <= p.min_qty + EPS)
        need = np.where(needs, p.max_qty - position, np.float32(0))
        need_days = self._need_days(position)
        if p.transfer_first and self.S > 1:
            need = need - self._transfers(t, review, needs, need, need_days)
        buy = (need > EPS) & self.has_supplier
        offset = np.maximum(need_days - self.lead, 0)
        wanted = np.where(buy, need + p.demand_mean * offset, np.float32(0))
        qty = round_order_quantities(wanted, self.pack, self.moq).astype(np.float32)
        self._order(t, qty, offset.astype(np.float32), lead_z)

    def _need_days(self, position: F32) -> F32:
        """Days until the position falls below safety stock at the forecast rate (cloud: need_date)."""
        mean, floor = self.p.demand_mean, self.p.safety_stock
        with np.errstate(divide="ignore", invalid="ignore"):
            days = np.floor((position - floor) / mean)
        days = np.where((position < floor) | (mean <= 0), np.float32(0), days)
        return np.minimum(days, np.float32(MAX_PLAN_DAYS)).astype(np.float32)

    def _order(self, t: int, qty: F32, offset: F32, lead_z: F32 | None) -> None:
        flat = qty.reshape(-1)
        idx = np.flatnonzero(flat > 0)
        if idx.size == 0:
            return
        items = idx % self.I
        lead = self.lead[items] * self.plan.lead_factor[t, items]
        if lead_z is not None:
            lead = lead + self.lead_std[items] * lead_z.reshape(-1)[idx]
        lead = np.maximum(1, np.rint(lead)).astype(np.int64)
        start = t + offset.reshape(-1)[idx].astype(np.int64) + self.sim.approval_delay_days
        start = np.maximum(start, self.plan.supplier_stopped_until[t, items])
        arrival = np.minimum(start + lead, t + self.H - 1)
        self.pipe.reshape(self.H, -1)[arrival % self.H, idx] += flat[idx]
        self.on_order.reshape(-1)[idx] += flat[idx]
        price = self.cost[items] * self.plan.price_factor[t, items]
        self.tot["spend"].reshape(-1)[idx] += flat[idx] * price
        self.tot["ordered"].reshape(-1)[idx] += flat[idx]

    def _prebuy(self, t: int, items: NDArray[np.bool_], cover: float, lead_z: F32 | None) -> None:
        extra = np.where(items & self.has_supplier, cover * self.p.demand_mean, np.float32(0))
        qty = round_order_quantities(extra, self.pack, self.moq).astype(np.float32)
        self._order(t, np.broadcast_to(qty, self.oh.shape).copy(), np.zeros_like(self.oh), lead_z)

    def _transfers(self, t: int, review: NDArray[np.bool_], needs: F32, need: F32, need_days: F32) -> F32:
        """Move surplus (on hand above the order-up-to level) to short locations of the same SKU."""
        open_ = ~self.plan.closed[t]
        free = self.oh - self.reserved - self.p.max_qty
        surplus = np.where(review & ~needs & open_ & (free > EPS), free, np.float32(0))
        wanted = np.where(open_ & (need > EPS), need, np.float32(0))
        shape = (self.R * (self.I // self.S), self.S)
        sur, want = surplus.reshape(shape), wanted.reshape(shape)
        rows = np.flatnonzero((sur > EPS).any(axis=1) & (want > EPS).any(axis=1))
        inflow = np.zeros_like(self.oh)
        if rows.size == 0:
            return inflow
        sur, want = sur[rows].copy(), want[rows].copy()
        urgency = np.where(want > EPS, need_days.reshape(shape)[rows], INF)
        order = np.argsort(urgency, axis=1, kind="stable")
        into, out = np.zeros_like(want), np.zeros_like(want)
        lanes = np.arange(rows.size)
        for j in range(self.S):
            dest = order[:, j]
            for _ in range(self.S - 1):
                src = np.argmax(sur, axis=1)
                take = np.minimum(want[lanes, dest], sur[lanes, src])
                sur[lanes, src] -= take
                want[lanes, dest] -= take
                into[lanes, dest] += take
                out[lanes, src] += take
        inflow.reshape(shape)[rows] = into
        self._ship(t, rows, out, into)
        return inflow

    def _ship(self, t: int, rows: NDArray[np.intp], out: F32, into: F32) -> None:
        base = (rows * self.S)[:, None] + np.arange(self.S)
        src = base[out > 0]
        qf, ef = self.q.reshape(self.K, -1), self.e.reshape(self.K, -1)
        qs, es = qf[:, src], ef[:, src]
        earliest = fefo_take(qs, es, out[out > 0])
        qf[:, src] = qs
        self.oh.reshape(-1)[src] -= out[out > 0]
        per_row = np.full(out.shape, INF, dtype=np.float32)
        per_row[out > 0] = earliest
        row_expiry = np.broadcast_to(per_row.min(axis=1)[:, None], out.shape)
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
        if self.poisson.size == 0:
            z = self.rng_demand.standard_normal(self.oh.shape, dtype=np.float32)
            z *= self.demand_std
            z += lam
            return np.maximum(z, 0, out=z)
        d = np.empty_like(self.oh)
        if self.normal.size:
            z = self.rng_demand.standard_normal((self.R, self.normal.size), dtype=np.float32)
            d[:, self.normal] = np.maximum(lam[self.normal] + self.demand_std[self.normal] * z, 0)
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
        _fefo_take_dense(self.q.reshape(self.K, -1), served.reshape(-1))
        self.oh -= served
        tot["demand"] += d
        tot["short"] += short
        tot["served"] += served
        tot["stockout_days"] += out
        tot["inventory"] += self.oh
        self.daily_value[t] = float((self.oh @ self.cost).mean())
        self.daily_out[t] = float(out.sum()) / self.R

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
