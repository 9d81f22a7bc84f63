"""Raw tag reads -> :class:`TagObservation` events, ALE style: event cycles and a stable set.

A reader in multi-poll mode reports each tag in its field 10-50 times a second (hundreds in a read
storm); sending every read to the cloud would be noise. Per logical reader:

- reads are grouped into **event cycles** (``cycle_s``, default 1 s); per cycle and (EPC, antenna)
  the smoother keeps the count, first and last seen, and the peak RSSI, and emits ONE observation;
- a tag enters the **stable set** after ``min_reads`` reads (a single stray read of a tag passing
  by is not "present"); until then its reads are held, and they are reported with the cycle in
  which the tag becomes stable. A candidate unseen for ``grace_s`` is forgotten;
- a stable tag **leaves** the stable set only after ``grace_s`` without any read, so a missed read
  or a whole missed cycle never makes it "gone": membership (:attr:`TagSmoother.stable`) and the
  ``departed`` count change only then.

Pure: the caller passes ``now``.
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


@dataclass(slots=True)
class _Member:
    reads: int  # reads counted towards min_reads (saturates once stable)
    last_seen: datetime
    stable: bool = False


class TagSmoother:
    """Aggregates the reads of ONE logical reader; :meth:`flush` emits once per elapsed cycle."""

    def __init__(
        self,
        reader_id: str,
        cycle_s: float = 1.0,
        location: str | None = None,
        *,
        min_reads: int = 1,
        grace_s: float = 3.0,
    ) -> None:
        if cycle_s <= 0:
            raise ValueError("cycle_s must be positive")
        if min_reads < 1 or grace_s <= 0:
            raise ValueError("min_reads must be >= 1 and grace_s positive")
        self.reader_id = reader_id
        self.location = location
        self.cycle = timedelta(seconds=cycle_s)
        self.min_reads = min_reads
        self.grace = timedelta(seconds=grace_s)
        self._cycle_start: datetime | None = None
        # Reads not reported yet, per (EPC, antenna): this cycle's, plus a candidate's held reads.
        self._tags: dict[tuple[str, int], _Aggregate] = {}
        self._members: dict[str, _Member] = {}  # per EPC: candidates and the stable set
        self.entered = 0  # tags that joined the stable set
        self.departed = 0  # tags that left it after the grace period

    @property
    def stable(self) -> frozenset[str]:
        """EPCs currently in the stable set."""
        return frozenset(epc for epc, m in self._members.items() if m.stable)

    def add(self, read: TagRead, now: datetime) -> None:
        if self._cycle_start is None:
            self._cycle_start = now
        epc = read.epc.upper()
        member = self._members.get(epc)
        if member is not None and now - member.last_seen >= self.grace:
            self._forget([epc])  # gone for longer than the grace period: this read starts afresh
            member = None
        if member is None:
            self._members[epc] = _Member(1, now)
        else:
            member.last_seen = now
            if not member.stable:
                member.reads += 1
        key = (epc, read.antenna)
        agg = self._tags.get(key)
        if agg is None:
            self._tags[key] = _Aggregate(now, now, 1, read.rssi)
            return
        agg.last_seen = now
        agg.count += 1
        if read.rssi is not None and (agg.peak_rssi is None or read.rssi > agg.peak_rssi):
            agg.peak_rssi = read.rssi

    def flush(self, now: datetime, *, force: bool = False) -> list[TagObservation]:
        """Observations of the current cycle if it has elapsed (or ``force``, e.g. at shutdown).

        Only stable tags are reported; a candidate's reads are kept for the cycle in which it
        becomes stable (or dropped with it after ``grace_s`` unseen).
        """
        self._expire(now)
        if self._cycle_start is None or (not force and now - self._cycle_start < self.cycle):
            return []
        for member in self._members.values():
            if not member.stable and member.reads >= self.min_reads:
                member.stable = True
                self.entered += 1
        observations: list[TagObservation] = []
        for (epc, antenna), agg in sorted(self._tags.items()):
            tag = self._members.get(epc)
            if tag is None or not tag.stable:
                continue  # a candidate: held until it has min_reads (or forgotten)
            observations.append(
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
            )
            del self._tags[(epc, antenna)]
        self._cycle_start = now if self._tags else None
        return observations

    def _expire(self, now: datetime) -> None:
        """Stable tags and candidates unseen for ``grace_s`` leave (candidates' reads with them)."""
        gone = [epc for epc, m in self._members.items() if now - m.last_seen >= self.grace]
        if gone:
            self._forget(gone)

    def _forget(self, epcs: list[str]) -> None:
        for epc in epcs:
            if self._members.pop(epc).stable:
                self.departed += 1
        dropped = set(epcs)
        for key in [k for k in self._tags if k[0] in dropped]:
            del self._tags[key]
