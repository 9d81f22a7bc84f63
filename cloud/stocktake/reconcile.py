"""Continuous stocktake reconciliation: pure logic (numpy + sets), no I/O.

One call compares, for one site and one reconciliation window, the *book* (where the movement
ledger says each present item is) with what the readers *observed* in the window:

- ``missing``: on the book at a covered location and not observed anywhere for ``k`` consecutive
  windows in which that location had coverage (one missed cycle is not a loss);
- ``misplaced``: observed at a location other than its book location (and not also at the book
  location: a tag read by a neighbouring reader as well is a cross-read, not a misplacement);
- ``unexpected``: observed, but not on the book anywhere on the site, while the EPC is known
  (registered item or seen in the ledger before);
- ``unknown``: observed and not known at all (listed separately: usually foreign tags).

Coverage and confidence per covered location come from its read rate (the share of its book
items observed in the window) against its own history: a location whose readers produced no
observation at all is ``no_coverage``, and one reading far below its usual rate is ``degraded``.
Neither advances the unseen-window counters, so a quiet reader never turns into "everything
missing". ``confidence`` is the probability that an item present there would have been seen in
at least one of ``k`` windows, ``1 - (1 - p)^k`` with ``p`` the baseline read rate: the
trustworthiness of a ``missing`` call at that location.

Everything is vectorised over integer ids (EPCs factorised once with ``np.unique``), so 100k
items over 500 locations reconcile in a few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

DiscrepancyKind = Literal["missing", "misplaced", "unexpected", "unknown"]
CoverageStatus = Literal["ok", "degraded", "no_coverage", "idle"]


@dataclass(frozen=True, slots=True)
class ReconcileParams:
    # Consecutive covered windows an item must go unseen before it is called missing.
    missing_after_windows: int = 3
    # A window reading below this share of the location's baseline read rate is "degraded".
    degraded_ratio: float = 0.5
    # Read rates remembered per location for the baseline (median).
    history_windows: int = 10

    def __post_init__(self) -> None:
        if self.missing_after_windows < 1:
            raise ValueError("missing_after_windows must be at least 1")
        if not 0 <= self.degraded_ratio <= 1:
            raise ValueError("degraded_ratio must be within 0..1")


@dataclass(frozen=True, slots=True)
class ReconcileInput:
    """One site, one window. Observations are grouped by ``(epc, location)`` with read counts."""

    book_epcs: Sequence[str]
    book_locations: Sequence[str]
    obs_epcs: Sequence[str]
    obs_locations: Sequence[str]
    obs_counts: Sequence[int]
    covered: Collection[str]
    # EPCs that are registered items or have a ledger row, for "unexpected" versus "unknown".
    known_epcs: Collection[str] = ()
    # Unseen covered windows so far, per EPC (absent = 0).
    streaks: Mapping[str, int] = field(default_factory=dict)
    # Earlier read rates of "ok" windows per covered location, oldest first.
    history: Mapping[str, Sequence[float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LocationResult:
    location: str
    status: CoverageStatus
    book_count: int
    seen_count: int  # book items of this location observed here
    observed_count: int  # distinct EPCs observed here
    read_rate: float | None
    baseline_read_rate: float | None
    confidence: float | None


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: DiscrepancyKind
    epc: str
    location: str  # where it matters: book location (missing) or where it was observed
    book_location: str | None
    unseen_windows: int = 0


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    locations: list[LocationResult]
    discrepancies: list[Discrepancy]
    streaks: dict[str, int]  # nonzero counters to remember for the next window

    def count(self, kind: DiscrepancyKind) -> int:
        return sum(1 for d in self.discrepancies if d.kind == kind)


def _strings(values: Sequence[str]) -> npt.NDArray[np.str_]:
    return np.asarray(values, dtype=np.str_) if len(values) else np.empty(0, dtype="<U1")


def _lookup(sorted_keys: npt.NDArray[np.str_], values: npt.NDArray[np.str_]) -> npt.NDArray[np.intp]:
    """Index of each value in ``sorted_keys``, or -1."""
    if not len(sorted_keys) or not len(values):
        return np.full(len(values), -1, dtype=np.intp)
    idx = np.searchsorted(sorted_keys, values)
    idx[idx >= len(sorted_keys)] = 0
    return np.where(sorted_keys[idx] == values, idx, -1)


def reconcile(data: ReconcileInput, params: ReconcileParams = ReconcileParams()) -> ReconcileResult:
    book_e, book_l = _strings(data.book_epcs), _strings(data.book_locations)
    obs_e, obs_l = _strings(data.obs_epcs), _strings(data.obs_locations)
    obs_n = np.asarray(data.obs_counts, dtype=np.int64)
    if not (len(book_e) == len(book_l) and len(obs_e) == len(obs_l) == len(obs_n)):
        raise ValueError("book and observation columns must have equal lengths")

    epcs, epc_inv = np.unique(np.concatenate([book_e, obs_e]), return_inverse=True)
    covered_names = _strings(sorted(data.covered))
    locs, loc_inv = np.unique(np.concatenate([book_l, obs_l, covered_names]), return_inverse=True)
    nb, no = len(book_e), len(obs_e)
    book_id, obs_id = epc_inv[:nb], epc_inv[nb : nb + no]
    book_loc, obs_loc = loc_inv[:nb], loc_inv[nb : nb + no]
    n_epc, n_loc = len(epcs), len(locs)

    book_loc_of = np.full(n_epc, -1, dtype=np.intp)
    book_loc_of[book_id] = book_loc
    seen_any = np.zeros(n_epc, dtype=bool)
    seen_any[obs_id] = True
    at_book = obs_loc == book_loc_of[obs_id]
    seen_at_book = np.zeros(n_epc, dtype=bool)
    seen_at_book[obs_id[at_book]] = True
    covered = np.zeros(n_loc, dtype=bool)
    covered[loc_inv[nb + no :]] = True

    locations, usable = _coverage(data, params, locs, covered, book_loc, obs_loc, seen_at_book[book_id])

    # Unseen-window counters: reset when seen anywhere, advanced only where coverage was usable.
    prev = np.zeros(n_epc, dtype=np.int64)
    if data.streaks:
        s_keys = _strings(list(data.streaks))
        s_idx = _lookup(epcs, s_keys)
        s_val = np.fromiter(data.streaks.values(), dtype=np.int64, count=len(data.streaks))
        prev[s_idx[s_idx >= 0]] = s_val[s_idx >= 0]
    item_covered = covered[book_loc]
    unseen = ~seen_any[book_id] & item_covered
    streak = np.where(unseen & usable[book_loc], prev[book_id] + 1, np.where(unseen, prev[book_id], 0))
    k = params.missing_after_windows
    missing = np.nonzero(streak >= k)[0]

    discrepancies = [
        Discrepancy("missing", str(book_e[i]), str(book_l[i]), str(book_l[i]), int(streak[i]))
        for i in missing
    ]
    discrepancies += _misplaced(epcs, locs, obs_id, obs_loc, obs_n, book_loc_of, at_book, seen_at_book)
    discrepancies += _off_book(data, epcs, locs, obs_id, obs_loc, book_loc_of)
    kept = np.nonzero(streak > 0)[0]
    streaks = dict(zip(book_e[kept].tolist(), streak[kept].tolist(), strict=True))
    return ReconcileResult(locations=locations, discrepancies=discrepancies, streaks=streaks)


def _coverage(
    data: ReconcileInput,
    params: ReconcileParams,
    locs: npt.NDArray[np.str_],
    covered: npt.NDArray[np.bool_],
    book_loc: npt.NDArray[np.intp],
    obs_loc: npt.NDArray[np.intp],
    book_seen_at_book: npt.NDArray[np.bool_],
) -> tuple[list[LocationResult], npt.NDArray[np.bool_]]:
    """Per covered location: counts, read rate, status, confidence; and where streaks may advance."""
    n_loc = len(locs)
    book_count = np.bincount(book_loc, minlength=n_loc)
    seen_count = np.bincount(book_loc[book_seen_at_book], minlength=n_loc)
    observed = np.bincount(obs_loc, minlength=n_loc)
    usable = np.zeros(n_loc, dtype=bool)
    results = []
    k = params.missing_after_windows
    for i in np.nonzero(covered)[0]:
        name = str(locs[i])
        books, seen, obs = int(book_count[i]), int(seen_count[i]), int(observed[i])
        history = list(data.history.get(name, ()))[-params.history_windows :]
        baseline = float(np.median(history)) if history else None
        rate = seen / books if books else None
        status: CoverageStatus
        if books == 0:
            status = "idle" if obs == 0 else "ok"
        elif obs == 0:
            status = "no_coverage"  # the readers went quiet: no evidence, not "all missing"
        elif baseline is not None and rate is not None and rate < params.degraded_ratio * baseline:
            status = "degraded"
        else:
            status = "ok"
        usable[i] = status == "ok"
        p = baseline if baseline is not None else rate
        confidence = None if p is None else (0.0 if status == "no_coverage" else 1 - (1 - p) ** k)
        results.append(LocationResult(name, status, books, seen, obs, rate, baseline, confidence))
    return results, usable


def _misplaced(
    epcs: npt.NDArray[np.str_],
    locs: npt.NDArray[np.str_],
    obs_id: npt.NDArray[np.intp],
    obs_loc: npt.NDArray[np.intp],
    obs_n: npt.NDArray[np.int64],
    book_loc_of: npt.NDArray[np.intp],
    at_book: npt.NDArray[np.bool_],
    seen_at_book: npt.NDArray[np.bool_],
) -> list[Discrepancy]:
    """One per item seen only away from its book location: where it was read most."""
    rows = np.nonzero((book_loc_of[obs_id] >= 0) & ~at_book & ~seen_at_book[obs_id])[0]
    if not len(rows):
        return []
    order = rows[np.lexsort((-obs_n[rows], obs_id[rows]))]
    first = order[np.r_[True, obs_id[order][1:] != obs_id[order][:-1]]]
    return [
        Discrepancy(
            "misplaced", str(epcs[obs_id[r]]), str(locs[obs_loc[r]]), str(locs[book_loc_of[obs_id[r]]])
        )
        for r in first
    ]


def _off_book(
    data: ReconcileInput,
    epcs: npt.NDArray[np.str_],
    locs: npt.NDArray[np.str_],
    obs_id: npt.NDArray[np.intp],
    obs_loc: npt.NDArray[np.intp],
    book_loc_of: npt.NDArray[np.intp],
) -> list[Discrepancy]:
    rows = np.nonzero(book_loc_of[obs_id] < 0)[0]
    if not len(rows):
        return []
    known = set(data.known_epcs)
    out = []
    for r in rows:
        epc = str(epcs[obs_id[r]])
        out.append(Discrepancy("unexpected" if epc in known else "unknown", epc, str(locs[obs_loc[r]]), None))
    return out


__all__ = [
    "CoverageStatus",
    "Discrepancy",
    "DiscrepancyKind",
    "LocationResult",
    "ReconcileInput",
    "ReconcileParams",
    "ReconcileResult",
    "reconcile",
]
