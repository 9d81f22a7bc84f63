"""Which events are too far from the receiving clock to be believed (issue 12, item 7).

A reading dated 2999 would stay a sensor's "latest" value for good, a movement dated 2999 would pin
an item as present, a reading dated year 1 would rewrite an open alert's start. Such events are
still stored (``events.implausible``, for audit) and counted per edge
(``edges.events_implausible``), but never projected: no sensor value, stock state, alert or
notification comes from them.

The window is ``[now - cloud.max_event_age_s, now + cloud.max_future_skew_s]`` on the cloud's
clock when the batch arrives. The age limit should be longer than an edge can hold events in its
outbox (an edge offline for a week delivers week-old events that are perfectly real).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shelfsense.config import CloudSettings
from shelfsense.contract import Event, SensorReading, SequencedEvent, TagObservation


@dataclass(frozen=True, slots=True)
class PlausibilityWindow:
    max_age: timedelta | None  # None: any past time is believed
    max_future: timedelta

    @classmethod
    def from_settings(cls, cloud: CloudSettings) -> PlausibilityWindow:
        age = cloud.max_event_age_s
        return cls(
            None if age is None else timedelta(seconds=age), timedelta(seconds=cloud.max_future_skew_s)
        )

    def implausible_seqs(self, events: Sequence[SequencedEvent], now: datetime) -> frozenset[int]:
        """Sequence numbers of the events with a time outside the window around ``now``."""
        earliest = None if self.max_age is None else now - self.max_age
        latest = now + self.max_future
        return frozenset(
            item.seq
            for item in events
            if any(not _inside(t, earliest, latest) for t in event_times(item.event))
        )


def _inside(when: datetime, earliest: datetime | None, latest: datetime) -> bool:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # naive = UTC (contract)
    return aware <= latest and (earliest is None or aware >= earliest)


def event_times(event: Event) -> Iterable[datetime]:
    """The times an event is filed under (a device's ``last_frame_at`` is information only)."""
    if isinstance(event, TagObservation):
        return (event.first_seen, event.last_seen)
    if isinstance(event, SensorReading):
        return (event.time,)
    return (event.at,)


__all__ = ["PlausibilityWindow", "event_times"]
