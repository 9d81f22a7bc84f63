"""The stages every event batch of the edge goes through, in order.

1. **validate** -- at the transport boundary: device measurements become contract events
   (:func:`edge.transports.measurements_to_readings`; what does not validate is counted and dropped
   there, never reaching the stages below);
2. **quality** -- :class:`edge.quality.Judge` flags out-of-range, stale and clock-skewed readings,
   judged at one instant per batch;
3. **alarms** -- :class:`edge.alarms.AlarmEvaluator` turns readings beyond a zone limit into
   raised/cleared :class:`LocalAlarm` events (not readings flagged ``out_of_range``: a dead probe
   is a device fault, not an excursion);
4. **commit** -- the agent stores the events and their alarms in one transaction
   (``EdgeAgent.submit`` / ``submit_durably``: the two differ only in what a full disk does).

Stages 2 and 3 are pure and live here (:meth:`Pipeline.prepare`), so their order is one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from edge.alarms import AlarmEvaluator
from edge.quality import Judge
from shelfsense.contract import Event, LocalAlarm, SensorReading

__all__ = ["Pipeline", "Prepared"]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch ready to commit: the events (readings flagged) and the alarms they raised."""

    events: list[Event]
    alarms: list[LocalAlarm]

    def batch(self) -> list[Event]:
        return [*self.events, *self.alarms]


class Pipeline:
    """Stages 2 (quality) and 3 (alarms) of the edge pipeline; the agent commits the result."""

    def __init__(
        self, alarms: AlarmEvaluator, stale_after_s: float, skew_warn_s: Callable[[], float | None]
    ) -> None:
        self.alarms = alarms
        self.stale_after_s = stale_after_s
        self._skew_warn_s = skew_warn_s  # read per batch: the clock's setting may change

    def prepare(self, events: Sequence[Event], now: datetime) -> Prepared:
        judge = Judge(now, self.stale_after_s, self._skew_warn_s())
        judged: list[Event] = [judge.flag(e) if isinstance(e, SensorReading) else e for e in events]
        raised: list[LocalAlarm] = []
        for event in judged:
            if isinstance(event, SensorReading) and "out_of_range" not in event.flags:
                raised.extend(self.alarms.evaluate(event))
        return Prepared(judged, raised)
