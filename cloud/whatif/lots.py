"""FEFO lot buckets for the perishable lanes, all dense numpy (no per-lane Python, no ``np.where``).

Each (run, item) lane keeps ``K`` buckets of (quantity, expiry day), oldest first: bucket 0 is picked
first and ``count`` is the first free bucket. Receipts go to bucket ``count``; when a lane has used all
``K`` buckets its youngest bucket absorbs the receipt and keeps the earlier expiry (conservative: those
units count as spoiling with the older ones). Once a day, a lane whose bucket 0 has been emptied shifts
down by one. Fresh receipts always expire after older ones (constant shelf life), so bucket order is
expiry order; a transfer with older lots joins at the end (a small FEFO approximation).

Masks are applied by multiplication: with mixed masks ``np.where`` is several times slower.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
NEVER = np.float32(1e30)  # "does not expire": finite, so masked arithmetic never makes inf - inf


class LotBuckets:
    def __init__(self, buckets: int, shape: tuple[int, int]) -> None:
        self.K = buckets
        self.q = np.zeros((buckets, *shape), dtype=np.float32)
        self.e = np.full((buckets, *shape), NEVER, dtype=np.float32)
        self.count = np.zeros(shape, dtype=np.float32)

    def seed(self, lots: list[list[tuple[float, float]]]) -> None:
        """The same starting lots in every run (one list per item, in item order); more lots than
        buckets share the last bucket, with the earliest expiry."""
        q0 = np.zeros((self.K, len(lots)), dtype=np.float32)
        e0 = np.full((self.K, len(lots)), NEVER, dtype=np.float32)
        for item, item_lots in enumerate(lots):
            for k, (qty, expiry) in enumerate(sorted(item_lots, key=lambda lot: lot[1])):
                slot = min(k, self.K - 1)
                q0[slot, item] += qty
                e0[slot, item] = min(float(e0[slot, item]), min(expiry, float(NEVER)))
        self.q[:] = q0[:, None, :]
        self.e[:] = e0[:, None, :]
        self.count[:] = np.minimum([len(x) for x in lots], self.K) if lots else 0

    def receive(self, arriving: F32, expiry: F32) -> None:
        """Arriving units join each lane's first free bucket (only the lanes that receive are touched)."""
        # The mask first: nonzero over a bool array is several times faster than over floats, and
        # ``arriving`` is usually a column slice (its flat copy is only made when something arrives).
        lanes = np.flatnonzero(arriving != 0)
        if lanes.size == 0:
            return
        flat = arriving.reshape(-1)
        qf, ef = self.q.reshape(-1), self.e.reshape(-1)
        width = arriving.shape[-1]
        # Fresh receipts: one expiry per item (no full-size copy); transfers: one per lane.
        exp = expiry[lanes % width] if expiry.ndim == 1 else expiry.reshape(-1)[lanes]
        exp = np.minimum(exp, NEVER)
        count = self.count.reshape(-1)
        used = count[lanes]
        cell = np.minimum(used, self.K - 1).astype(np.intp) * flat.size + lanes  # flat (bucket, lane)
        full = used >= self.K
        if full.any():  # all K in use: the youngest bucket absorbs it, with the earlier expiry
            held = np.where(qf[cell[full]] > 0, ef[cell[full]], NEVER)  # an emptied bucket's is stale
            exp[full] = np.minimum(exp[full], held)
        qf[cell] += flat[lanes]
        ef[cell] = exp
        count[lanes] = np.minimum(used + 1, self.K)

    def pick(self, amount: F32) -> None:
        """Take ``amount`` per lane, oldest bucket first (the caller never asks for more than on hand)."""
        remaining = amount.copy()
        take = np.empty_like(remaining)
        for k in range(self.K):
            np.minimum(self.q[k], remaining, out=take)
            self.q[k] -= take
            remaining -= take

    def expire(self, day: int) -> F32:
        """Write off the buckets whose expiry has come; the units per lane."""
        gone = self.q * (self.e <= day)
        self.q -= gone
        return gone.sum(axis=0)

    def spoil(self, items: NDArray[np.bool_]) -> F32:
        """Everything of these items (a cold-room failure); the units per (run, item)."""
        lost = self.q[:, :, items].sum(axis=0)
        self.q[:, :, items] = 0
        return lost

    def compact(self) -> None:
        """Lanes whose oldest bucket is empty move every bucket down by one."""
        shift = ((self.q[0] <= 0) & (self.count > 0)).astype(np.float32)
        keep, moved = 1 - shift, np.empty_like(shift)
        for k in range(self.K - 1):
            np.subtract(self.q[k + 1], self.q[k], out=moved)
            moved *= shift
            self.q[k] += moved
            # e * keep + e_next * shift, exactly (NEVER is finite): no temporaries
            self.e[k] *= keep
            np.multiply(self.e[k + 1], shift, out=moved)
            self.e[k] += moved
        self.q[self.K - 1] *= keep
        self.e[self.K - 1] += (NEVER - self.e[self.K - 1]) * shift
        self.count -= shift

    def take_from(self, lanes: NDArray[np.intp], amount: F32) -> F32:
        """FEFO-take ``amount`` from these flat lanes (transfers out); the earliest expiry taken."""
        qf, ef = self.q.reshape(self.K, -1), self.e.reshape(self.K, -1)
        qs, es = qf[:, lanes], ef[:, lanes]
        remaining = amount.copy()
        first = np.full(amount.shape, NEVER, dtype=np.float32)
        for k in range(self.K):
            take = np.minimum(qs[k], remaining)
            first = np.minimum(first, es[k] + (NEVER - es[k]) * (take <= 0))
            qs[k] -= take
            remaining -= take
        qf[:, lanes] = qs
        return first
