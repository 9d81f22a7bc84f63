"""Portal direction from the order of RSSI peaks seen by an outer and an inner reader.

A pallet passing a dock door is read by both readers; its RSSI peaks on the outer reader while it
is outside the door and on the inner one once through. Per EPC the tracker keeps the time of the
RSSI peak on each side. Once the tag has been unseen for ``settle_s`` the passage is decided:
outer peak first -> ``in``, inner peak first -> ``out``, only one side (or equal peak times) ->
``unknown``. Unknown passages produce no stock movement: the edge never guesses.

A reader that fails mid-passage makes the peak order a lie: unplug the inner reader while a pallet
enters and its only inner reads are the weak early ones, so the inner "peak" comes first and the
pallet looks like it left. The agent therefore reports each reader's liveness every cycle
(:meth:`PortalTracker.reader_status`: connected and heard within its silence limit, and when it
was last heard). A passage whose span overlaps an outage of either reader is ``unknown`` with
``unknown_reason="reader_down"``. Because an outage is only noticed once the reader has been
silent for its limit, a settled tag is decided only when every monitored reader has been heard
since the tag's last read, or is known to be down (at most ``MAX_LIVENESS_WAIT_S`` later).
Readers never reported are not monitored (pure use of the tracker, tests).

Dwell rule against ping-pong: a decided ``in``/``out`` is held for ``dwell_s`` before it is
emitted. A forklift hesitating in the doorway (in, back out, in again) then yields ONE passage: an
opposite passage of the same tag during the hold cancels the held one (the tag went back where it
came from; both are counted in ``pingpong_cancelled``), a same-direction one replaces it.
``flush_held`` releases everything held (at shutdown: decided passages are never lost).
Pure: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from shelfsense.config import PortalConfig
from shelfsense.contract import Event, PortalPassage, StockMovement, UnknownDirection

# A settled tag waits at most this long for news of a reader that has gone quiet (then it is
# decided as if the reader were down): bounds the delay a reader with a slow heartbeat can cause.
MAX_LIVENESS_WAIT_S = 30.0
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class _Side:
    peak_rssi: float | None
    peak_at: datetime


@dataclass(slots=True)
class _Track:
    first_seen: datetime
    last_seen: datetime
    outer: _Side | None = None
    inner: _Side | None = None


@dataclass(slots=True)
class _Liveness:
    last_heard: datetime | None = None
    down_since: datetime | None = None  # the last time it was heard before the current outage
    outages: list[tuple[datetime, datetime]] = field(default_factory=list)  # closed, oldest first


@dataclass(slots=True)
class _Held:
    events: list[Event]  # the passage and its movement
    direction: str
    release_at: datetime


class PortalTracker:
    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self.settle = timedelta(seconds=config.settle_s)
        self.dwell = timedelta(seconds=config.dwell_s)
        self._tracks: dict[str, _Track] = {}
        self._held: dict[str, _Held] = {}
        self._liveness: dict[str, _Liveness] = {}
        self.pingpong_cancelled = 0
        self.reader_down_passages = 0

    @property
    def readers(self) -> tuple[str, str]:
        return self.config.outer_reader, self.config.inner_reader

    def observe(self, reader_id: str, epc: str, rssi: float | None, now: datetime) -> None:
        """One read of ``epc`` by ``reader_id`` (reads of other readers are ignored)."""
        if reader_id == self.config.outer_reader:
            side_name = "outer"
        elif reader_id == self.config.inner_reader:
            side_name = "inner"
        else:
            return
        epc = epc.upper()
        track = self._tracks.get(epc)
        if track is None:
            track = self._tracks[epc] = _Track(first_seen=now, last_seen=now)
        track.first_seen = min(track.first_seen, now)
        track.last_seen = max(track.last_seen, now)
        side: _Side | None = getattr(track, side_name)
        if side is None:
            setattr(track, side_name, _Side(rssi, now))
        elif rssi is not None and (side.peak_rssi is None or rssi > side.peak_rssi):
            side.peak_rssi = rssi
            side.peak_at = now

    def reader_status(
        self, reader_id: str, *, alive: bool, last_heard: datetime | None, now: datetime
    ) -> None:
        """Liveness of one of the portal's readers (other readers are ignored), once per cycle.

        ``alive``: connected and heard within its silence limit; ``last_heard``: its last frame of
        any kind (tag read, keepalive, heartbeat answer). An outage runs from the last time the
        reader was heard to the first time it is heard again."""
        if reader_id not in self.readers:
            return
        state = self._liveness.setdefault(reader_id, _Liveness())
        state.last_heard = last_heard
        if not alive and state.down_since is None:
            state.down_since = last_heard or _EPOCH
        elif alive and state.down_since is not None:
            state.outages.append((state.down_since, last_heard or now))
            state.down_since = None

    def _forget_old_outages(self, now: datetime) -> None:
        oldest = min((t.first_seen for t in self._tracks.values()), default=now) - self.settle
        for state in self._liveness.values():
            state.outages = [(start, end) for start, end in state.outages if end >= oldest]

    def poll(self, now: datetime, *, force: bool = False) -> list[Event]:
        """Decide every tag unseen for ``settle_s`` (all tags if ``force``) whose readers' liveness
        is known; emit what the dwell rule no longer holds."""
        events: list[Event] = []
        self._forget_old_outages(now)
        for epc in [e for e, t in self._tracks.items() if force or self._decidable(t, now)]:
            events.extend(self._hold(epc, self._decide(epc, self._tracks.pop(epc)), now))
        for epc in [e for e, h in self._held.items() if h.release_at <= now]:
            events.extend(self._held.pop(epc).events)
        return events

    def flush_held(self) -> list[Event]:
        """Every held passage now (shutdown): a decided passage is never dropped."""
        events = [event for held in self._held.values() for event in held.events]
        self._held.clear()
        return events

    @property
    def holding(self) -> int:
        return len(self._held)

    def _hold(self, epc: str, events: list[Event], now: datetime) -> list[Event]:
        """Apply the dwell rule to a fresh decision; returns what is emitted right away."""
        passage = events[0]
        assert isinstance(passage, PortalPassage)
        if passage.direction == "unknown" or not self.dwell:
            return events
        held = self._held.pop(epc, None)
        if held is not None and held.direction != passage.direction:
            self.pingpong_cancelled += 2  # back where it came from: neither passage happened
            return []
        # A same-direction repeat replaces the held one (its movement would be a no-op twice).
        self._held[epc] = _Held(events, passage.direction, now + self.dwell)
        return []

    @property
    def tracking(self) -> int:
        return len(self._tracks)

    def _decidable(self, track: _Track, now: datetime) -> bool:
        """Settled, and every monitored reader heard since the tag's last read or known down."""
        if now - track.last_seen < self.settle:
            return False
        if now - track.last_seen >= self.settle + timedelta(seconds=MAX_LIVENESS_WAIT_S):
            return True
        return all(
            state.down_since is not None
            or (state.last_heard is not None and state.last_heard >= track.last_seen)
            for state in self._liveness.values()
        )

    def _reader_down_during(self, track: _Track) -> bool:
        """Did an outage of a portal reader overlap the passage (its first to its last read)?

        A reader back before the first read was up for the whole passage: had it heard the tag
        earlier, that read would be the first one."""
        start, end = track.first_seen, track.last_seen
        for state in self._liveness.values():
            spans = list(state.outages)
            if state.down_since is not None:
                spans.append((state.down_since, end))
            if state.last_heard is None or state.last_heard < end:
                spans.append((state.last_heard or _EPOCH, end))  # silent since: not heard to the end
            if any(down < end and up > start for down, up in spans):
                return True
        return False

    def _decide(self, epc: str, track: _Track) -> list[Event]:
        cfg = self.config
        direction: Literal["in", "out", "unknown"] = "unknown"
        reason: UnknownDirection | None = "one_zone"
        at = track.last_seen
        if self._reader_down_during(track):
            reason = "reader_down"
            self.reader_down_passages += 1
        elif track.outer is not None and track.inner is not None:
            outer_at, inner_at = track.outer.peak_at, track.inner.peak_at
            reason = "same_time"
            if outer_at < inner_at:
                direction, at, reason = "in", inner_at, None
            elif inner_at < outer_at:
                direction, at, reason = "out", outer_at, None
        passage = PortalPassage(
            epc=epc,
            portal=cfg.id,
            direction=direction,
            at=at,
            inside_location=cfg.inside_location,
            outside_location=cfg.outside_location,
            unknown_reason=reason,
        )
        if direction == "unknown":
            return [passage]
        inside, outside = cfg.inside_location, cfg.outside_location
        source, target = (outside, inside) if direction == "in" else (inside, outside)
        return [passage, StockMovement(epc=epc, from_location=source, to_location=target, at=at)]
