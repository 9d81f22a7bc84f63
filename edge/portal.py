"""Portal direction from the order of RSSI peaks seen by an outer and an inner reader.

A pallet passing a dock door is read by both readers; its RSSI peaks on the outer reader while it
is outside the door and on the inner one once through. Per EPC the tracker keeps the time of the
RSSI peak on each side. Once the tag has been unseen for ``settle_s`` the passage is decided:
outer peak first -> ``in``, inner peak first -> ``out``, only one side (or equal peak times) ->
``unknown``. Unknown passages produce no stock movement: the edge never guesses.
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


class PortalTracker:
    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self.settle = timedelta(seconds=config.settle_s)
        self._tracks: dict[str, _Track] = {}

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
        """Decide every tag unseen for ``settle_s`` (all tags if ``force``)."""
        events: list[Event] = []
        for epc in [e for e, t in self._tracks.items() if force or now - t.last_seen >= self.settle]:
            events.extend(self._decide(epc, self._tracks.pop(epc)))
        return events

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
