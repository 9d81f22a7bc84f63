"""Pure reconciliation logic: scenarios and a property test against a naive set-based reference."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.stocktake.reconcile import Discrepancy, ReconcileInput, ReconcileParams, reconcile

K3 = ReconcileParams(missing_after_windows=3)


def window(book: dict[str, str], seen: list[tuple[str, str]], **kw: object) -> ReconcileInput:
    return ReconcileInput(
        book_epcs=list(book),
        book_locations=list(book.values()),
        obs_epcs=[e for e, _ in seen],
        obs_locations=[loc for _, loc in seen],
        obs_counts=[1] * len(seen),
        covered=kw.pop("covered", {"L1", "L2"}),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_classifies_every_kind_and_needs_k_windows_for_missing() -> None:
    book = {"A": "L1", "B": "L1", "C": "L2"}
    seen = [("A", "L1"), ("B", "L2"), ("D", "L1"), ("E", "L2")]
    streaks: dict[str, int] = {}
    for n in range(1, 4):
        result = reconcile(window(book, seen, known_epcs={"E"}, streaks=streaks), K3)
        streaks = result.streaks
        assert streaks == {"C": n}
        kinds = {(d.kind, d.epc) for d in result.discrepancies}
        expected = {("misplaced", "B"), ("unknown", "D"), ("unexpected", "E")}
        assert kinds == (expected | {("missing", "C")} if n == 3 else expected)
    misplaced = next(d for d in result.discrepancies if d.kind == "misplaced")
    assert misplaced == Discrepancy("misplaced", "B", "L2", "L1")
    missing = next(d for d in result.discrepancies if d.kind == "missing")
    assert (missing.location, missing.unseen_windows) == ("L2", 3)
    by_location = {r.location: r for r in result.locations}
    assert (by_location["L1"].book_count, by_location["L1"].seen_count, by_location["L1"].read_rate) == (
        2,
        1,
        0.5,
    )
    # Seen again: the counter resets and "missing" disappears.
    result = reconcile(window(book, [*seen, ("C", "L2")], streaks=streaks), K3)
    assert result.streaks == {}
    assert "missing" not in {d.kind for d in result.discrepancies}


def test_quiet_location_is_no_coverage_not_everything_missing() -> None:
    book = {f"X{i}": "L2" for i in range(50)}
    streaks = {epc: 2 for epc in book}
    result = reconcile(window(book, [("A", "L1")], streaks=streaks), K3)
    l2 = next(r for r in result.locations if r.location == "L2")
    assert (l2.status, l2.confidence, l2.read_rate) == ("no_coverage", 0.0, 0.0)
    assert result.count("missing") == 0
    assert result.streaks == streaks  # no evidence either way: counters kept, not advanced


def test_degraded_reader_does_not_advance_counters_and_confidence_follows_history() -> None:
    book = {f"X{i:02d}": "L1" for i in range(20)}
    seen = [("X00", "L1")]  # 5 % read rate against a 90 % baseline
    result = reconcile(window(book, seen, history={"L1": [0.9, 0.9, 0.95]}), K3)
    l1 = next(r for r in result.locations if r.location == "L1")
    assert (l1.status, l1.read_rate, l1.baseline_read_rate) == ("degraded", 0.05, 0.9)
    assert result.streaks == {}
    assert l1.confidence is not None and abs(l1.confidence - (1 - 0.1**3)) < 1e-9
    healthy = reconcile(window(book, [(e, "L1") for e in list(book)[:18]], history={"L1": [0.9]}), K3)
    assert next(r for r in healthy.locations if r.location == "L1").status == "ok"
    assert set(healthy.streaks) == {"X18", "X19"}


def test_cross_read_at_book_location_is_not_misplaced() -> None:
    result = reconcile(window({"A": "L1"}, [("A", "L1"), ("A", "L2")]), K3)
    assert result.discrepancies == []


def test_misplaced_reports_the_strongest_other_location() -> None:
    data = ReconcileInput(
        book_epcs=["A"],
        book_locations=["L1"],
        obs_epcs=["A", "A"],
        obs_locations=["L2", "L3"],
        obs_counts=[2, 9],
        covered={"L1", "L2", "L3"},
    )
    assert reconcile(data).discrepancies == [Discrepancy("misplaced", "A", "L3", "L1")]


def test_uncovered_book_locations_never_go_missing() -> None:
    result = reconcile(window({"A": "backroom"}, [("B", "L1")], streaks={"A": 5}), K3)
    assert result.count("missing") == 0 and result.streaks == {}


# --- property: the vectorised code equals a plain set-based reference ------------------------------

epcs = st.sampled_from([f"E{i}" for i in range(12)])
places = st.sampled_from(["L1", "L2", "L3", "dock"])


def reference(data: ReconcileInput, k: int) -> tuple[set[tuple[str, str, str]], dict[str, int]]:
    book = dict(zip(data.book_epcs, data.book_locations, strict=True))
    seen_at: dict[str, dict[str, int]] = defaultdict(dict)
    for epc, loc, n in zip(data.obs_epcs, data.obs_locations, data.obs_counts, strict=True):
        seen_at[epc][loc] = n
    observed_locs = {loc for locs in seen_at.values() for loc in locs}
    out: set[tuple[str, str, str]] = set()
    streaks: dict[str, int] = {}
    for epc, loc in book.items():
        if loc not in data.covered or epc in seen_at:
            continue
        quiet = loc not in observed_locs  # it has this book item, so no observation = no coverage
        streak = data.streaks.get(epc, 0) + (0 if quiet else 1)
        if streak:
            streaks[epc] = streak
        if streak >= k:
            out.add(("missing", epc, loc))
    for epc, locs in seen_at.items():
        if epc in book:
            if book[epc] not in locs:
                out.add(("misplaced", epc, max(locs, key=lambda loc: locs[loc])))
        else:
            for loc in locs:
                out.add(("unexpected" if epc in data.known_epcs else "unknown", epc, loc))
    return out, streaks


@settings(max_examples=150, deadline=None)
@given(
    book=st.dictionaries(epcs, places, max_size=10),
    seen=st.dictionaries(st.tuples(epcs, places), st.integers(1, 5), max_size=15),
    known=st.sets(epcs),
    streaks=st.dictionaries(epcs, st.integers(1, 4)),
    k=st.integers(1, 3),
)
def test_matches_reference(
    book: dict[str, str], seen: dict[tuple[str, str], int], known: set[str], streaks: dict[str, int], k: int
) -> None:
    # Distinct counts per EPC so "the strongest location" is never a tie.
    counts = {key: n * 100 + i for i, (key, n) in enumerate(seen.items())}
    data = ReconcileInput(
        book_epcs=list(book),
        book_locations=list(book.values()),
        obs_epcs=[e for e, _ in counts],
        obs_locations=[loc for _, loc in counts],
        obs_counts=list(counts.values()),
        covered={"L1", "L2", "L3"},
        known_epcs=known,
        streaks={e: s for e, s in streaks.items() if book.get(e) in {"L1", "L2", "L3"}},
    )
    result = reconcile(data, ReconcileParams(missing_after_windows=k))
    expected, expected_streaks = reference(data, k)
    assert {(d.kind, d.epc, d.location) for d in result.discrepancies} == expected
    assert result.streaks == expected_streaks
