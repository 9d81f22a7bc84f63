"""Portal direction from the order of RSSI peaks seen by an outer and an inner reader.

A pallet passing a dock door is read by both readers; its RSSI peaks on the outer reader while it
is outside the door and on the inner one once through. Per EPC the tracker keeps the time of the
RSSI peak on each side. Once the tag has been unseen for ``settle_s`` the passage is decided:
outer peak first -> ``in``, inner peak first -> ``out``, only one side (or equal peak times) ->
``unknown``. Unknown passages produce no stock movement: the edge never guesses.

Dwell rule against ping-pong: a decided ``in``/``out`` is held for ``dwell_s`` before it is
emitted. A forklift hesitating in the doorway (in, back out, in again) then yields ONE passage: an
opposite passage of the same tag during the hold cancels the held one (the tag went back where it
came from; both are counted in ``pingpong_cancelled``), a same-direction one replaces it.
``flush_held`` releases everything held (at shutdown: decided passages are never lost).
Pure: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shelfsense.config import PortalConfig
from shelfsense.contract import Event, PortalPassage, StockMovement


@dataclass(slots=True)
class _Side:
    peak_rssi: float | None
    peak_at: datetime


@dataclass(slots=True)
class _Track:
    last_seen: datetime
    outer: _Side | None = None
    inner: _Side | None = None


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
        self.pingpong_cancelled = 0

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
            track = self._tracks[epc] = _Track(last_seen=now)
        track.last_seen = max(track.last_seen, now)
        side: _Side | None = getattr(track, side_name)
        if side is None:
            setattr(track, side_name, _Side(rssi, now))
        elif rssi is not None and (side.peak_rssi is None or rssi > side.peak_rssi):
            side.peak_rssi = rssi
            side.peak_at = now

    def poll(self, now: datetime, *, force: bool = False) -> list[Event]:
        """Decide every tag unseen for ``settle_s`` (all tags if ``force``); emit what the dwell
        rule no longer holds."""
        events: list[Event] = []
        for epc in [e for e, t in self._tracks.items() if force or now - t.last_seen >= self.settle]:
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

    def _decide(self, epc: str, track: _Track) -> list[Event]:
        cfg = self.config
        direction: Literal["in", "out", "unknown"] = "unknown"
        at = track.last_seen
        if track.outer is not None and track.inner is not None:
            outer_at, inner_at = track.outer.peak_at, track.inner.peak_at
            if outer_at < inner_at:
                direction, at = "in", inner_at
            elif inner_at < outer_at:
                direction, at = "out", outer_at
        passage = PortalPassage(
            epc=epc,
            portal=cfg.id,
            direction=direction,
            at=at,
            inside_location=cfg.inside_location,
            outside_location=cfg.outside_location,
        )
        if direction == "unknown":
            return [passage]
        inside, outside = cfg.inside_location, cfg.outside_location
        source, target = (outside, inside) if direction == "in" else (inside, outside)
        return [passage, StockMovement(epc=epc, from_location=source, to_location=target, at=at)]
