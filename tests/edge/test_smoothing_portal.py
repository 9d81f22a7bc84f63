"""Smoothing of raw reads and portal direction, with time driven by the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from devices.readings import TagRead
from edge.portal import PortalTracker
from edge.smoothing import TagSmoother
from shelfsense.config import PortalConfig
from shelfsense.contract import PortalPassage, StockMovement

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
EPC = "3034ABCD0000000000000001"
PORTAL = PortalConfig(
    id="dock-1",
    outer_reader="outer",
    inner_reader="inner",
    inside_location="store",
    outside_location="yard",
    settle_s=1.5,
    dwell_s=0.0,  # decisions emitted at once: these tests are about the peak order (dwell: see
    # test_stable_set_dwell.py)
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_smoother_aggregates_one_cycle_per_tag_and_antenna() -> None:
    smoother = TagSmoother("outer", cycle_s=1.0, location="dock")
    smoother.add(TagRead(EPC.lower(), -60.0, 0x3000), at(0.0))
    smoother.add(TagRead(EPC, -48.0, 0x3000), at(0.3))
    smoother.add(TagRead(EPC, -55.0, 0x3000), at(0.6))
    smoother.add(TagRead("E2000000000000000000000A", None, 0x3000), at(0.7))
    assert smoother.flush(at(0.9)) == []  # cycle not over yet
    obs = smoother.flush(at(1.0))
    assert [(o.epc, o.count, o.rssi, o.first_seen, o.last_seen) for o in obs] == [
        (EPC, 3, -48.0, at(0.0), at(0.6)),
        ("E2000000000000000000000A", 1, None, at(0.7), at(0.7)),
    ]
    assert all(o.reader == "outer" and o.location == "dock" for o in obs)
    assert smoother.flush(at(5.0)) == []  # nothing read since
    smoother.add(TagRead(EPC, -50.0, 0x3000), at(5.1))
    assert [o.count for o in smoother.flush(at(5.2), force=True)] == [1]


def sweep(tracker: PortalTracker, reader: str, start: float, peak_at: float, end: float) -> None:
    """Reads every 0.1 s whose RSSI peaks at ``peak_at`` (a tag passing the antenna)."""
    t = start
    while t <= end + 1e-9:
        tracker.observe(reader, EPC, -40.0 - 10 * abs(t - peak_at), at(t))
        t += 0.1


def test_outer_peak_first_is_in_with_movement_after_settling() -> None:
    tracker = PortalTracker(PORTAL)
    sweep(tracker, "outer", 0.0, 0.5, 1.5)
    sweep(tracker, "inner", 0.4, 1.2, 2.0)  # zones overlap; only the peak order counts
    assert tracker.poll(at(3.0)) == []  # last seen 2.0, settle 1.5: not yet
    events = tracker.poll(at(3.5))
    passage, movement = events
    assert isinstance(passage, PortalPassage) and isinstance(movement, StockMovement)
    assert (passage.direction, passage.at) == ("in", at(1.2))
    assert (movement.from_location, movement.to_location, movement.reason) == ("yard", "store", "portal")
    assert tracker.tracking == 0 and tracker.poll(at(10)) == []


def test_inner_peak_first_is_out() -> None:
    tracker = PortalTracker(PORTAL)
    sweep(tracker, "inner", 0.0, 0.4, 1.0)
    sweep(tracker, "outer", 0.8, 1.5, 2.0)
    passage, movement = tracker.poll(at(4.0))
    assert isinstance(passage, PortalPassage) and isinstance(movement, StockMovement)
    assert passage.direction == "out"
    assert (movement.from_location, movement.to_location) == ("store", "yard")


def test_one_side_only_is_unknown_and_moves_nothing() -> None:
    tracker = PortalTracker(PORTAL)
    sweep(tracker, "outer", 0.0, 0.5, 1.0)
    tracker.observe("some-other-reader", EPC, -30.0, at(0.5))  # not part of this portal
    events = tracker.poll(at(2.6))
    assert len(events) == 1
    assert isinstance(events[0], PortalPassage) and events[0].direction == "unknown"


@given(
    outer_peak=st.floats(0, 5),
    gap=st.floats(0.05, 5),
    outer_first=st.booleans(),
    noise=st.lists(st.floats(-90, -70), max_size=20),
)
def test_direction_follows_peak_order(
    outer_peak: float, gap: float, outer_first: bool, noise: list[float]
) -> None:
    tracker = PortalTracker(PORTAL)
    first, second = ("outer", "inner") if outer_first else ("inner", "outer")
    tracker.observe(first, EPC, -40.0, at(outer_peak))
    tracker.observe(second, EPC, -40.0, at(outer_peak + gap))
    for i, rssi in enumerate(noise):  # weaker reads never move a peak
        tracker.observe("outer" if i % 2 else "inner", EPC, rssi, at(outer_peak + gap * i / 20))
    events = tracker.poll(at(outer_peak + gap + 1.5))
    assert isinstance(events[0], PortalPassage)
    assert events[0].direction == ("in" if outer_first else "out")
    assert len(events) == 2
