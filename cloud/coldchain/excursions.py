"""Excursion evaluation over one sensor's readings: pure, incremental, computed from the readings.

Rules follow the electronic temperature indicators used in the field (WHO PQS E006 style):

- :class:`SingleEventRule` — beyond a limit for a *continuous* duration (e.g. above 8 °C for 30 min).
- :class:`CumulativeRule` — total time beyond a limit over the lot's life, never reset (e.g. 10 h
  above 8 °C). Once raised it stays raised: the product has been exposed.
- :class:`InstantRule` — beyond an absolute limit at any single reading (e.g. below 0 °C: frozen).

Time between readings uses **sample-and-hold**: a reading's value stands until the next reading.
So a run of readings beyond a limit lasts from its first beyond reading to the first reading back
inside; the single-event and the cumulative rule agree on what "time beyond" means. Nothing is
averaged: one reading beyond an instant limit raises it.

Clearing uses hysteresis: an alert raised above ``limit`` clears only at ``<= limit - hysteresis``
(below: at ``>= limit + hysteresis``), so a value hovering at the limit does not flap.

Gaps (no reading for longer than ``gap_s``) are their own kind of event, raised by :meth:`tick`
while the silence lasts or by the late reading that ends it. Time inside a gap is no evidence of
anything: it is not counted as beyond and it breaks single-event runs.

Door openings: a rise of at least ``rise_c`` between two readings at most ``within_s`` apart,
starting from inside all limits, opens a grace period of ``grace_s``. Single-event and instant
raises in the grace period are held back; if the readings come back inside all limits before it
ends, they are dropped and one ``door_open`` info event records the episode; otherwise they are
raised at the first reading after the grace period. Cumulative time is counted regardless: it is
evidence of what the product went through.

:class:`ExcursionEvaluator` is fed readings of one sensor in time order; out-of-order and
non-finite readings are counted and dropped. Its state is plain data (:meth:`snapshot` /
:meth:`restore`), so the cloud can persist it between ingest batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Direction = Literal["above", "below"]
EventKind = Literal["single_event", "cumulative", "instant", "gap", "door_open"]
EventState = Literal["raised", "cleared", "info"]
Moment = datetime | float


class ExcursionConfigError(ValueError):
    """A rule set is inconsistent (duplicate names, negative durations)."""


@dataclass(frozen=True, slots=True)
class _LimitRule:
    name: str
    direction: Direction
    limit: float

    def beyond(self, value: float) -> bool:
        return value > self.limit if self.direction == "above" else value < self.limit

    def worse(self, a: float, b: float) -> float:
        return max(a, b) if self.direction == "above" else min(a, b)


@dataclass(frozen=True, slots=True)
class SingleEventRule(_LimitRule):
    duration_s: float = 0.0
    hysteresis: float = 0.5

    def cleared(self, value: float) -> bool:
        if self.direction == "above":
            return value <= self.limit - self.hysteresis
        return value >= self.limit + self.hysteresis


@dataclass(frozen=True, slots=True)
class InstantRule(_LimitRule):
    hysteresis: float = 0.5

    def cleared(self, value: float) -> bool:
        if self.direction == "above":
            return value <= self.limit - self.hysteresis
        return value >= self.limit + self.hysteresis


@dataclass(frozen=True, slots=True)
class CumulativeRule(_LimitRule):
    total_s: float = 0.0


Rule = SingleEventRule | CumulativeRule | InstantRule


@dataclass(frozen=True, slots=True)
class DoorOpenPolicy:
    rise_c: float
    within_s: float = 120.0
    grace_s: float = 300.0


@dataclass(frozen=True, slots=True)
class ExcursionConfig:
    rules: tuple[Rule, ...] = ()
    gap_s: float | None = None
    door: DoorOpenPolicy | None = None

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ExcursionConfigError(f"rule names must be unique: {names}")
        for rule in self.rules:
            if getattr(rule, "duration_s", 0) < 0 or getattr(rule, "total_s", 0) < 0:
                raise ExcursionConfigError(f"rule {rule.name!r}: durations must not be negative")
            if getattr(rule, "hysteresis", 0) < 0:
                raise ExcursionConfigError(f"rule {rule.name!r}: hysteresis must not be negative")
        if self.gap_s is not None and self.gap_s <= 0:
            raise ExcursionConfigError("gap_s must be positive")


def cold_chain_rules(
    *,
    min_c: float | None = 2.0,
    max_c: float | None = 8.0,
    single_event_s: float = 30 * 60,
    cumulative_s: float | None = 10 * 3600,
    freeze_c: float | None = 0.0,
    hysteresis: float = 0.5,
    gap_s: float | None = 15 * 60,
    door: DoorOpenPolicy | None = None,
) -> ExcursionConfig:
    """The usual 2-8 °C rule set: single-event both ways, cumulative above, instant freeze."""
    rules: list[Rule] = []
    if max_c is not None:
        rules.append(SingleEventRule("high_single", "above", max_c, single_event_s, hysteresis))
        if cumulative_s is not None:
            rules.append(CumulativeRule("high_cumulative", "above", max_c, cumulative_s))
    if min_c is not None:
        rules.append(SingleEventRule("low_single", "below", min_c, single_event_s, hysteresis))
    if freeze_c is not None:
        rules.append(InstantRule("freeze", "below", freeze_c, hysteresis))
    return ExcursionConfig(tuple(rules), gap_s, door)


@dataclass(frozen=True, slots=True)
class ExcursionEvent:
    """A rule raised or cleared, a gap, or a suppressed door opening (``info``).

    ``at`` is when the condition was met under sample-and-hold (a single-event raise is at
    ``started_at + duration``, a cumulative raise when the total reached its budget); raises held
    back by a door grace period are at the reading that released them.
    """

    kind: EventKind
    rule: str
    state: EventState
    at: datetime
    started_at: datetime
    value: float | None = None
    limit: float | None = None
    peak: float | None = None
    duration_s: float = 0.0


@dataclass(slots=True)
class RuleState:
    run_start: float | None = None  # first reading of the current run beyond the limit
    active: bool = False  # raised and not cleared
    since: float | None = None  # start of the excursion that raised it
    peak: float | None = None
    total_s: float = 0.0  # cumulative rules only
    pending: bool = False  # raise held back by a door grace period


@dataclass(slots=True)
class EvaluatorState:
    last_time: float | None = None
    last_value: float | None = None
    in_gap: bool = False
    door_start: float | None = None
    door_peak: float | None = None
    rules: dict[str, RuleState] = field(default_factory=dict)
    dropped_out_of_order: int = 0
    dropped_not_finite: int = 0


def _seconds(moment: Moment) -> float:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return float(moment)


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class ExcursionEvaluator:
    """Incremental evaluation of one sensor's readings against an :class:`ExcursionConfig`."""

    def __init__(self, config: ExcursionConfig, state: EvaluatorState | None = None) -> None:
        self.config = config
        self.state = state or EvaluatorState()
        for rule in config.rules:
            self.state.rules.setdefault(rule.name, RuleState())

    # --- persistence ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-compatible plain data."""
        return asdict(self.state)

    @classmethod
    def restore(cls, config: ExcursionConfig, snapshot: dict[str, Any]) -> ExcursionEvaluator:
        data = dict(snapshot)
        rules = {name: RuleState(**value) for name, value in data.pop("rules", {}).items()}
        return cls(config, EvaluatorState(**data, rules=rules))

    # --- evaluation -------------------------------------------------------------------------

    def tick(self, now: Moment) -> list[ExcursionEvent]:
        """Raise a gap alert when no reading came for longer than ``gap_s`` (call periodically)."""
        st, gap_s = self.state, self.config.gap_s
        if gap_s is None or st.last_time is None or st.in_gap:
            return []
        now_s = _seconds(now)
        if now_s - st.last_time <= gap_s:
            return []
        st.in_gap = True
        return [self._gap_event("raised", st.last_time + gap_s, now_s - st.last_time)]

    def feed(self, time: Moment, value: float) -> list[ExcursionEvent]:
        """Evaluate one reading; readings must come in time order (older ones are dropped)."""
        st = self.state
        t = _seconds(time)
        if not (math.isfinite(value) and math.isfinite(t)):
            st.dropped_not_finite += 1
            return []
        if st.last_time is not None and t < st.last_time:
            st.dropped_out_of_order += 1
            return []
        events: list[ExcursionEvent] = []
        gap = self._account_interval(t, events)
        suppressed = self._door_before(t, value, gap, events)
        for rule in self.config.rules:
            self._evaluate(rule, t, value, suppressed, events)
        self._door_after(t, value, events)
        st.last_time, st.last_value = t, value
        return events

    def _gap_event(self, state: EventState, at: float, silence_s: float) -> ExcursionEvent:
        started = self.state.last_time if self.state.last_time is not None else at
        return ExcursionEvent("gap", "gap", state, _dt(at), _dt(started), duration_s=silence_s)

    def _account_interval(self, t: float, events: list[ExcursionEvent]) -> bool:
        """Close the interval since the last reading; returns True when it was a data gap."""
        st, gap_s = self.state, self.config.gap_s
        if st.last_time is None or st.last_value is None:
            return False
        dt = t - st.last_time
        if gap_s is not None and dt > gap_s:
            if not st.in_gap:
                events.append(self._gap_event("raised", st.last_time + gap_s, dt))
            events.append(self._gap_event("cleared", t, dt))
            st.in_gap = False
            for rule in self.config.rules:  # no evidence across a gap: runs end
                st.rules[rule.name].run_start = None
            return True
        if st.in_gap:  # tick() saw silence, then a reading stamped earlier than that tick arrived
            events.append(self._gap_event("cleared", t, dt))
            st.in_gap = False
        for rule in self.config.rules:
            if isinstance(rule, CumulativeRule) and rule.beyond(st.last_value):
                self._add_cumulative(rule, st.last_time, dt, events)
        return False

    def _add_cumulative(
        self, rule: CumulativeRule, start: float, dt: float, events: list[ExcursionEvent]
    ) -> None:
        rs = self.state.rules[rule.name]
        before = rs.total_s
        rs.total_s += dt
        if rs.since is None:
            rs.since = start
        if not rs.active and rs.total_s >= rule.total_s:
            rs.active = True
            at = start + max(0.0, rule.total_s - before)
            events.append(
                ExcursionEvent(
                    "cumulative",
                    rule.name,
                    "raised",
                    _dt(at),
                    _dt(rs.since),
                    self.state.last_value,
                    rule.limit,
                    rs.peak,
                    rs.total_s,
                )
            )

    def _evaluate(
        self, rule: Rule, t: float, value: float, suppressed: bool, events: list[ExcursionEvent]
    ) -> None:
        rs = self.state.rules[rule.name]
        beyond = rule.beyond(value)
        if beyond:
            rs.peak = value if rs.peak is None else rule.worse(rs.peak, value)
        if isinstance(rule, CumulativeRule):
            if beyond and rs.total_s >= rule.total_s and not rs.active:  # a zero budget
                self._add_cumulative(rule, t, 0.0, events)
            return
        if isinstance(rule, SingleEventRule):
            self._evaluate_single(rule, rs, t, value, beyond, suppressed, events)
        else:
            self._evaluate_instant(rule, rs, t, value, beyond, suppressed, events)

    def _raise(
        self,
        rule: Rule,
        rs: RuleState,
        at: float,
        since: float,
        value: float,
        suppressed: bool,
        events: list[ExcursionEvent],
    ) -> None:
        if suppressed:
            rs.pending = True
            rs.since = since
            return
        kind: EventKind = "single_event" if isinstance(rule, SingleEventRule) else "instant"
        rs.active, rs.pending, rs.since = True, False, since
        events.append(
            ExcursionEvent(
                kind, rule.name, "raised", _dt(at), _dt(since), value, rule.limit, rs.peak, at - since
            )
        )

    def _clear(self, rule: Rule, rs: RuleState, t: float, value: float, events: list[ExcursionEvent]) -> None:
        kind: EventKind = "single_event" if isinstance(rule, SingleEventRule) else "instant"
        since = rs.since if rs.since is not None else t
        events.append(
            ExcursionEvent(
                kind, rule.name, "cleared", _dt(t), _dt(since), value, rule.limit, rs.peak, t - since
            )
        )
        rs.active, rs.since, rs.peak = False, None, None

    def _evaluate_single(
        self,
        rule: SingleEventRule,
        rs: RuleState,
        t: float,
        value: float,
        beyond: bool,
        suppressed: bool,
        events: list[ExcursionEvent],
    ) -> None:
        start = rs.run_start if rs.run_start is not None else (t if beyond else None)
        if not rs.active and rs.pending and not suppressed:  # held back by a door, grace is over
            self._raise(rule, rs, t, rs.since if rs.since is not None else t, value, False, events)
        elif not rs.active and start is not None and t - start >= rule.duration_s:
            self._raise(rule, rs, start + rule.duration_s, start, value, suppressed, events)
        rs.run_start = start if beyond else None
        if rs.active and rule.cleared(value):
            self._clear(rule, rs, t, value, events)
        elif not rs.active and not rs.pending and not beyond:
            rs.peak = None

    def _evaluate_instant(
        self,
        rule: InstantRule,
        rs: RuleState,
        t: float,
        value: float,
        beyond: bool,
        suppressed: bool,
        events: list[ExcursionEvent],
    ) -> None:
        if (beyond or rs.pending) and not rs.active:
            since = rs.since if rs.pending and rs.since is not None else t
            self._raise(rule, rs, t, since, value, suppressed, events)
        if rs.active and rule.cleared(value):
            self._clear(rule, rs, t, value, events)
        elif not rs.active and not rs.pending and not beyond:
            rs.peak = None

    # --- door openings ----------------------------------------------------------------------

    def _inside_all(self, value: float) -> bool:
        return not any(rule.beyond(value) for rule in self.config.rules)

    def _door_before(self, t: float, value: float, gap: bool, events: list[ExcursionEvent]) -> bool:
        """Start or end a door episode; True while raises are held back."""
        st, door = self.state, self.config.door
        if door is None:
            return False
        if st.door_start is not None and (gap or t - st.door_start > door.grace_s):
            st.door_start = st.door_peak = None  # grace over: held-back raises go out now
            return False
        if st.door_start is None and not gap and st.last_time is not None and st.last_value is not None:
            rose = value - st.last_value >= door.rise_c and t - st.last_time <= door.within_s
            if rose and self._inside_all(st.last_value):
                st.door_start, st.door_peak = st.last_time, value
        if st.door_start is None:
            return False
        st.door_peak = max(st.door_peak if st.door_peak is not None else value, value)
        return True

    def _door_after(self, t: float, value: float, events: list[ExcursionEvent]) -> None:
        st = self.state
        if st.door_start is None or not self._inside_all(value):
            return
        events.append(
            ExcursionEvent(
                "door_open",
                "door_open",
                "info",
                _dt(t),
                _dt(st.door_start),
                value,
                None,
                st.door_peak,
                t - st.door_start,
            )
        )
        for rule in self.config.rules:
            rs = st.rules[rule.name]
            if rs.pending:
                rs.pending, rs.since, rs.peak = False, None, None
        st.door_start = st.door_peak = None


def evaluate(config: ExcursionConfig, readings: Iterable[tuple[Moment, float]]) -> list[ExcursionEvent]:
    """All events of a whole series (a convenience over :class:`ExcursionEvaluator`)."""
    evaluator = ExcursionEvaluator(config)
    events: list[ExcursionEvent] = []
    for time, value in readings:
        events.extend(evaluator.feed(time, value))
    return events


__all__ = [
    "CumulativeRule",
    "DoorOpenPolicy",
    "EvaluatorState",
    "ExcursionConfig",
    "ExcursionConfigError",
    "ExcursionEvaluator",
    "ExcursionEvent",
    "InstantRule",
    "RuleState",
    "SingleEventRule",
    "cold_chain_rules",
    "evaluate",
]
