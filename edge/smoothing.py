"""Raw tag reads -> :class:`TagObservation` events, one per (EPC, antenna) per event cycle.

A reader in multi-poll mode reports each tag in its field 10-50 times a second; sending every read
to the cloud would be noise. Per event cycle (default 1 s) the smoother keeps, for each
(EPC, antenna): the count, first and last seen, and the peak RSSI. Pure: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.readings import TagRead
from shelfsense.contract import TagObservation


@dataclass(slots=True)
class _Aggregate:
    first_seen: datetime
    last_seen: datetime
    count: int
    peak_rssi: float | None


class TagSmoother:
    """Aggregates the reads of ONE reader; :meth:`flush` emits once per elapsed cycle."""

    def __init__(self, reader_id: str, cycle_s: float = 1.0, location: str | None = None) -> None:
        if cycle_s <= 0:
            raise ValueError("cycle_s must be positive")
        self.reader_id = reader_id
        self.location = location
        self.cycle = timedelta(seconds=cycle_s)
        self._cycle_start: datetime | None = None
        self._tags: dict[tuple[str, int], _Aggregate] = {}

    def add(self, read: TagRead, now: datetime) -> None:
        if self._cycle_start is None:
            self._cycle_start = now
        key = (read.epc.upper(), read.antenna)
        agg = self._tags.get(key)
        if agg is None:
            self._tags[key] = _Aggregate(now, now, 1, read.rssi)
            return
        agg.last_seen = now
        agg.count += 1
        if read.rssi is not None and (agg.peak_rssi is None or read.rssi > agg.peak_rssi):
            agg.peak_rssi = read.rssi

    def flush(self, now: datetime, *, force: bool = False) -> list[TagObservation]:
        """Observations of the current cycle if it has elapsed (or ``force``, e.g. at shutdown)."""
        if self._cycle_start is None or (not force and now - self._cycle_start < self.cycle):
            return []
        observations = [
            TagObservation(
                epc=epc,
                reader=self.reader_id,
                antenna=antenna,
                rssi=agg.peak_rssi,
                first_seen=agg.first_seen,
                last_seen=agg.last_seen,
                count=agg.count,
                location=self.location,
            )
            for (epc, antenna), agg in sorted(self._tags.items())
        ]
        self._tags.clear()
        self._cycle_start = None
        return observations
