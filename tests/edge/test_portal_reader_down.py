"""A portal with a failed reader must not guess (issue 14 item 5), with time driven by the test.

Field report: with the inner reader unplugged for 30 s while two pallets entered, half the cases
were booked as leaving -- the inner reader's only reads were the weak early ones, so its "peak"
came first. A passage that overlaps an outage of either reader is ``unknown`` / ``reader_down``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from test_smoothing_portal import EPC, PORTAL, at  # settle 1.5 s, no dwell: decisions at once

from edge.agent import report_reader
from edge.portal import MAX_LIVENESS_WAIT_S, PortalTracker
from edge.supervisor import DeviceHealthState
from shelfsense.contract import PortalPassage, StockMovement

SILENCE_S = 3.0  # the serial transport's limit: three unanswered 1 s heartbeats


class Clock:
    """Drives a tracker like the agent does: reads, then per 0.1 s cycle liveness + poll."""

    def __init__(self, tracker: PortalTracker, unplugged: dict[str, tuple[float, float]]) -> None:
        self.tracker = tracker
        self.unplugged = unplugged  # reader -> (from, to) seconds: nothing heard meanwhile
        self.heard = {"outer": at(0), "inner": at(0)}
        self.events: list[object] = []

    def up(self, reader: str, t: float) -> bool:
        start, end = self.unplugged.get(reader, (-1.0, -1.0))
        return not start <= t < end

    def run(self, until: float, reads: dict[str, tuple[float, float, float]]) -> None:
        """``reads``: reader -> (first, last, peak) seconds of one tag's passage."""
        t = 0.0
        while t <= until + 1e-9:
            for reader in ("outer", "inner"):
                if not self.up(reader, t):
                    continue
                self.heard[reader] = at(t)  # heartbeat answer or a read
                first, last, peak = reads.get(reader, (1e9, -1e9, 0.0))
                if first <= t <= last:
                    self.tracker.observe(reader, EPC, -40.0 - 10 * abs(t - peak), at(t))
            for reader in ("outer", "inner"):
                alive = (at(t) - self.heard[reader]).total_seconds() <= SILENCE_S
                self.tracker.reader_status(reader, alive=alive, last_heard=self.heard[reader], now=at(t))
            self.events.extend(self.tracker.poll(at(t)))
            t = round(t + 0.1, 6)

    def passages(self) -> list[PortalPassage]:
        return [e for e in self.events if isinstance(e, PortalPassage)]

    def movements(self) -> list[StockMovement]:
        return [e for e in self.events if isinstance(e, StockMovement)]


ENTERING = {"outer": (1.0, 5.0, 2.0), "inner": (1.5, 6.0, 5.0)}  # outer peaks first: in


def test_both_readers_up_entering_is_in() -> None:
    clock = Clock(PortalTracker(PORTAL), {})
    clock.run(12.0, ENTERING)
    assert [(p.direction, p.unknown_reason) for p in clock.passages()] == [("in", None)]
    assert [(m.from_location, m.to_location) for m in clock.movements()] == [("yard", "store")]


def test_inner_unplugged_before_its_peak_is_unknown_not_out() -> None:
    # Unplugged before the outer peak (2.0 s), the inner side's only reads are weak early ones
    # (1.5-1.8 s): without liveness its "peak" comes first -> "out". That is the field failure.
    blind = PortalTracker(PORTAL)
    blind_clock = Clock(blind, {})
    blind_clock.run(12.0, {"outer": ENTERING["outer"], "inner": (1.5, 1.8, 5.0)})
    assert [p.direction for p in blind_clock.passages()] == ["out"]  # what happened in the field

    clock = Clock(PortalTracker(PORTAL), {"inner": (1.85, 20.0)})
    clock.run(30.0, ENTERING)
    assert [(p.direction, p.unknown_reason) for p in clock.passages()] == [("unknown", "reader_down")]
    assert clock.movements() == []  # no stock move guessed
    assert clock.tracker.reader_down_passages == 1


def test_unplug_in_the_last_instants_is_still_caught() -> None:
    # Outer unplugged at 5.5 s while the inner side still reads the tag (until 6.0 s). The outage
    # is only noticed SILENCE_S after its last frame, after the tag settled: the decision waits.
    clock = Clock(PortalTracker(PORTAL), {"outer": (5.5, 40.0)})
    clock.run(20.0, ENTERING)
    assert [(p.direction, p.unknown_reason) for p in clock.passages()] == [("unknown", "reader_down")]


def test_a_passage_read_completely_before_the_unplug_keeps_its_direction() -> None:
    clock = Clock(PortalTracker(PORTAL), {"inner": (6.5, 40.0)})
    clock.run(20.0, ENTERING)
    assert [(p.direction, p.unknown_reason) for p in clock.passages()] == [("in", None)]


def test_outage_before_the_passage_is_over_and_forgotten() -> None:
    clock = Clock(PortalTracker(PORTAL), {"inner": (0.0, 0.5)})
    late = {k: (a + 10, b + 10, c + 10) for k, (a, b, c) in ENTERING.items()}
    clock.run(25.0, late)
    assert [(p.direction, p.unknown_reason) for p in clock.passages()] == [("in", None)]


def test_a_reader_never_heard_again_does_not_stall_decisions_forever() -> None:
    tracker = PortalTracker(PORTAL)
    tracker.reader_status("outer", alive=True, last_heard=at(0), now=at(0))
    tracker.reader_status("inner", alive=True, last_heard=at(0), now=at(0))
    tracker.observe("outer", EPC, -40.0, at(1))
    tracker.observe("inner", EPC, -40.0, at(2))
    # Outer still "alive" by its own limit but silent since: the decision waits ...
    assert tracker.poll(at(5)) == []
    # ... at most MAX_LIVENESS_WAIT_S, then the silent reader counts as down.
    (passage,) = tracker.poll(at(2 + PORTAL.settle_s + MAX_LIVENESS_WAIT_S))
    assert isinstance(passage, PortalPassage)
    assert (passage.direction, passage.unknown_reason) == ("unknown", "reader_down")


def test_one_zone_only_says_so() -> None:
    clock = Clock(PortalTracker(PORTAL), {})
    clock.run(10.0, {"outer": (1.0, 3.0, 2.0)})
    assert [(p.direction, p.unknown_reason) for p in clock.passages()] == [("unknown", "one_zone")]


@given(
    outage_start=st.floats(0.0, 7.0),
    outage_len=st.floats(3.5, 15.0),
    reader=st.sampled_from(["outer", "inner"]),
)
def test_an_outage_overlapping_the_passage_never_books_the_wrong_direction(
    outage_start: float, outage_len: float, reader: str
) -> None:
    clock = Clock(PortalTracker(PORTAL), {reader: (outage_start, outage_start + outage_len)})
    clock.run(outage_start + outage_len + 10.0, ENTERING)
    assert all(m.to_location == "store" for m in clock.movements())  # never booked as leaving
    for passage in clock.passages():
        assert passage.direction in ("in", "unknown")
        if passage.direction == "unknown":
            assert passage.unknown_reason in ("reader_down", "one_zone")


def run_with_agent_liveness(reset_at: float | None, until: float = 20.0) -> list[PortalPassage]:
    """The agent's own liveness report (:func:`edge.agent.report_reader`) per 0.1 s cycle, with the
    inner reader's connection reset at ``reset_at`` and back before the next cycle (LLRP reconnects
    in tens of milliseconds), so no cycle ever sees it disconnected."""
    tracker = PortalTracker(PORTAL)
    health = {reader: DeviceHealthState(reader, connected=True) for reader in ("outer", "inner")}
    seen = {reader: 0 for reader in health}
    events: list[object] = []
    t = 0.0
    while t <= until + 1e-9:
        for reader, state in health.items():
            state.heard(at(t))
            first, last, peak = ENTERING[reader]
            if first <= t <= last:
                tracker.observe(reader, EPC, -40.0 - 10 * abs(t - peak), at(t))
        if reset_at is not None and abs(t - reset_at) < 1e-6:
            inner = health["inner"]  # what supervise() records on the failure, then the reconnect
            inner.connected = False
            inner.heard_before_loss = inner.last_frame_at
            inner.reconnects += 1
            inner.mark_connected()
        for reader, state in health.items():
            reconnected = state.reconnects != seen[reader]
            seen[reader] = state.reconnects
            report_reader(tracker, reader, state, SILENCE_S, at(t), reconnected=reconnected)
        events.extend(tracker.poll(at(t)))
        t = round(t + 0.1, 6)
    return [e for e in events if isinstance(e, PortalPassage)]


def test_a_reset_shorter_than_a_cycle_still_makes_the_passage_unknown() -> None:
    """tests/edge/test_llrp_transport.py's reader reset, made deterministic: the reconnect beat the
    agent's cycle, the reader never looked down, and a passage whose inner reads had a gap was
    booked with a direction."""
    assert [(p.direction, p.unknown_reason) for p in run_with_agent_liveness(None)] == [("in", None)]
    reset = run_with_agent_liveness(3.0)
    assert [(p.direction, p.unknown_reason) for p in reset] == [("unknown", "reader_down")]


def test_a_reset_long_before_the_passage_changes_nothing() -> None:
    late = run_with_agent_liveness(0.2)  # the passage starts at 1.0 s
    assert [(p.direction, p.unknown_reason) for p in late] == [("in", None)]
