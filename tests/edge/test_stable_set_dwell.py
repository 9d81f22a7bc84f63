"""Issue 4's reading pipeline: ALE stable set (min_reads, grace), read storms, portal dwell rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.readings import TagRead
from edge.portal import PortalTracker
from edge.smoothing import TagSmoother
from shelfsense.config import PortalConfig
from shelfsense.contract import PortalPassage, StockMovement

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
EPC = "3034ABCD0000000000000001"
OTHER = "3034ABCD0000000000000002"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def read(epc: str = EPC, rssi: float = -50.0, antenna: int = 1) -> TagRead:
    return TagRead(epc, rssi, 0x3000, antenna)


def test_read_storm_becomes_one_observation_per_cycle() -> None:
    """600 reads/s of one tag on two antennas for 3 s -> 6 observations carrying every read."""
    smoother = TagSmoother("shelf", cycle_s=1.0, min_reads=3, grace_s=2.0)
    observations = []
    for i in range(1800):  # 600 reads/s
        t = i / 600
        smoother.add(read(antenna=1 + i % 2, rssi=-60.0 + (i % 7)), at(t))
        observations += smoother.flush(at(t))
    observations += smoother.flush(at(3.0), force=True)
    assert len(observations) == 6
    assert sum(o.count for o in observations) == 1800
    assert {o.antenna for o in observations} == {1, 2}
    assert all(o.rssi == -54.0 for o in observations)  # the peak survives aggregation


def test_tag_enters_the_stable_set_only_after_min_reads() -> None:
    smoother = TagSmoother("shelf", cycle_s=1.0, min_reads=3, grace_s=5.0)
    smoother.add(read(), at(0.1))
    smoother.add(read(OTHER), at(0.2))
    smoother.add(read(), at(0.5))
    assert smoother.flush(at(1.0)) == []  # 2 reads < 3: a candidate, nothing reported
    assert smoother.stable == frozenset()
    smoother.add(read(), at(1.2))  # third read: stable; the held reads come with it
    [obs] = smoother.flush(at(2.0))
    assert (obs.epc, obs.count, obs.first_seen, obs.last_seen) == (EPC, 3, at(0.1), at(1.2))
    assert smoother.stable == {EPC} and smoother.entered == 1


def test_one_missed_cycle_never_makes_a_stable_tag_gone() -> None:
    smoother = TagSmoother("shelf", cycle_s=1.0, min_reads=2, grace_s=2.5)
    smoother.add(read(), at(0.1))  # the cycle starts with the first read
    smoother.add(read(), at(0.2))
    assert [o.count for o in smoother.flush(at(1.1))] == [2]
    # The next cycle: the reader misses the tag entirely.
    assert smoother.flush(at(2.0)) == []
    assert smoother.stable == {EPC} and smoother.departed == 0
    smoother.add(read(), at(2.1))  # back: one read is enough for a stable tag
    assert [o.count for o in smoother.flush(at(3.1))] == [1]
    # Now really gone: unseen for the grace period.
    assert smoother.flush(at(4.5)) == [] and smoother.stable == {EPC}
    assert smoother.flush(at(4.7)) == []
    assert smoother.stable == frozenset() and smoother.departed == 1


def test_a_stray_candidate_is_forgotten_after_the_grace_period() -> None:
    smoother = TagSmoother("shelf", cycle_s=1.0, min_reads=2, grace_s=1.5)
    smoother.add(read(), at(0.0))
    assert smoother.flush(at(1.0)) == []
    smoother.add(read(), at(2.0))  # 2 s later: the first read has expired, this is read 1 again
    assert smoother.flush(at(3.0)) == [] and smoother.stable == frozenset()
    assert smoother.departed == 0  # it never was present


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(0.01, 2.0), min_size=1, max_size=60),
    grace=st.floats(2.1, 5.0),
)
def test_gaps_shorter_than_grace_never_depart(gaps: list[float], grace: float) -> None:
    """Whatever the read timing, a tag never seen apart longer than grace_s stays stable."""
    smoother = TagSmoother("shelf", cycle_s=0.5, min_reads=1, grace_s=grace)
    t = 0.0
    for gap in gaps:
        smoother.add(read(), at(t))
        smoother.flush(at(t))
        t += gap
        smoother.flush(at(t - 0.001))  # flushes during the gap see no read
    smoother.flush(at(t), force=True)  # end the last cycle
    assert smoother.departed == 0 and smoother.stable == {EPC}


# --- portal dwell rule ------------------------------------------------------------------------

PORTAL = PortalConfig(
    id="dock-1",
    outer_reader="outer",
    inner_reader="inner",
    inside_location="store",
    outside_location="yard",
    settle_s=1.0,
    dwell_s=3.0,
)


def sweep(tracker: PortalTracker, first: str, second: str, start: float) -> None:
    """A tag passing from ``first``'s zone to ``second``'s: RSSI peaks 0.5 s apart."""
    for i in range(11):
        t = start + i * 0.1
        tracker.observe(first, EPC, -40.0 - 10 * abs(t - (start + 0.2)), at(t))
        tracker.observe(second, EPC, -40.0 - 10 * abs(t - (start + 0.7)), at(t))


def test_passage_is_emitted_after_the_dwell_time() -> None:
    tracker = PortalTracker(PORTAL)
    sweep(tracker, "outer", "inner", 0.0)
    assert tracker.poll(at(2.1)) == [] and tracker.holding == 1  # decided (settled), held
    events = tracker.poll(at(5.1))
    assert [type(e) for e in events] == [PortalPassage, StockMovement]
    assert isinstance(events[0], PortalPassage) and events[0].direction == "in"


def test_ping_pong_in_the_doorway_yields_one_net_passage() -> None:
    """In, back out, in again within the dwell time: one IN, not IN/OUT/IN."""
    tracker = PortalTracker(PORTAL)
    emitted = []
    sweep(tracker, "outer", "inner", 0.0)  # in
    emitted += tracker.poll(at(2.1))
    sweep(tracker, "inner", "outer", 2.2)  # back out
    emitted += tracker.poll(at(4.3))
    sweep(tracker, "outer", "inner", 4.4)  # in again
    emitted += tracker.poll(at(6.5))
    emitted += tracker.poll(at(20.0))
    passages = [e for e in emitted if isinstance(e, PortalPassage)]
    movements = [e for e in emitted if isinstance(e, StockMovement)]
    assert [p.direction for p in passages] == ["in"]
    assert [(m.from_location, m.to_location) for m in movements] == [("yard", "store")]
    assert tracker.pingpong_cancelled == 2


def test_in_then_out_within_the_dwell_moves_nothing() -> None:
    tracker = PortalTracker(PORTAL)
    sweep(tracker, "outer", "inner", 0.0)
    assert tracker.poll(at(2.1)) == []
    sweep(tracker, "inner", "outer", 2.2)
    assert tracker.poll(at(4.3)) == [] and tracker.poll(at(30.0)) == []
    assert tracker.holding == 0


def test_unknown_passages_are_not_held_and_held_ones_flush_at_shutdown() -> None:
    tracker = PortalTracker(PORTAL)
    for i in range(5):
        tracker.observe("outer", OTHER, -50.0, at(i * 0.1))  # one side only
    sweep(tracker, "inner", "outer", 0.0)  # out, held
    [unknown] = tracker.poll(at(2.1))
    assert isinstance(unknown, PortalPassage) and unknown.direction == "unknown"
    held = tracker.flush_held()
    assert isinstance(held[0], PortalPassage) and held[0].direction == "out"
    assert tracker.holding == 0


def test_separate_trips_beyond_the_dwell_time_all_count() -> None:
    tracker = PortalTracker(PORTAL)
    sweep(tracker, "outer", "inner", 0.0)
    first = tracker.poll(at(2.1)) + tracker.poll(at(5.2))
    sweep(tracker, "inner", "outer", 10.0)
    second = tracker.poll(at(12.1)) + tracker.poll(at(15.2))
    directions = [e.direction for e in first + second if isinstance(e, PortalPassage)]
    assert directions == ["in", "out"]
