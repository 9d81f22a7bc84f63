"""A lot's temperature history from where its items were and what those zones' sensors read.

Pure computation (no I/O); :mod:`cloud.lots.service` loads the rows and calls these.

- :func:`stays_of` turns an item's stock movements into *stays*: at one location from one
  movement to the next (the last stay of an item still on hand runs until ``now``).
- Items that moved together share one *path* (the same sequence of stays). A lot whose items
  were split has several paths; its evidence is the worst path's (a lot is only as good as its
  worst-treated item), see :mod:`cloud.lots.service`.
- :func:`zone_pieces` turns a zone's readings during a stay into piecewise-constant *pieces*:
  each reading holds until the next one of the same sensor (sample-and-hold, what a logger
  display shows), at most ``max_gap_s``: beyond that there is no data, and no data is never
  taken as any temperature. A reading from before the stay started stands for the zone's state
  when the items arrived. With several sensors in a zone each piece carries the warmest (``hi``)
  and coldest (``lo``) current value: excursions above the maximum use ``hi``, below the minimum
  ``lo``, and ageing (MKT, shelf life) uses ``hi`` - the conservative reading in each case.
- Excursion time is the summed duration of the pieces beyond a limit: computed from the
  readings themselves, never from an average that would hide a spike.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from cloud.coldchain.mkt import (
    DEFAULT_ACTIVATION_ENERGY_KJ,
    GAS_CONSTANT_KJ,
    ZERO_CELSIUS_K,
    log_mean_arrhenius,
)

DEFAULT_MAX_GAP_S = 1800.0


def epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class Move:
    """One stock movement of one item (``to_location`` None: it left the site)."""

    epc: str
    site_id: str
    to_location: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Stay:
    """An item at one location over ``[start, end)``; ``open`` = still there at ``end`` (now)."""

    site_id: str
    location: str
    start: float
    end: float
    open: bool = False


def stays_of(moves: Iterable[Move], now: datetime) -> dict[str, tuple[Stay, ...]]:
    """Stays per EPC from its movements (any order; later rows win a tie in time)."""
    by_epc: dict[str, list[Move]] = defaultdict(list)
    for move in moves:
        by_epc[move.epc].append(move)
    now_s = epoch(now)
    result: dict[str, tuple[Stay, ...]] = {}
    for epc, item_moves in by_epc.items():
        ordered = sorted(item_moves, key=lambda m: epoch(m.at))
        stays: list[Stay] = []
        for current, following in zip(ordered, [*ordered[1:], None], strict=True):
            if current.to_location is None:
                continue
            start = epoch(current.at)
            end = epoch(following.at) if following is not None else max(now_s, start)
            if end > start or following is None:
                stays.append(Stay(current.site_id, current.to_location, start, end, following is None))
        result[epc] = tuple(stays)
    return result


def paths_of(stays_by_epc: dict[str, tuple[Stay, ...]]) -> dict[tuple[Stay, ...], list[str]]:
    """Group items by identical stay sequences: ``path -> sorted EPCs``."""
    paths: dict[tuple[Stay, ...], list[str]] = defaultdict(list)
    for epc, stays in sorted(stays_by_epc.items()):
        paths[stays].append(epc)
    return dict(paths)


@dataclass(frozen=True, slots=True)
class Reading:
    sensor_id: str
    time: float  # epoch seconds
    value: float  # °C


@dataclass(frozen=True, slots=True)
class Piece:
    """Constant temperature over ``[start, end)`` at one location (``hi``/``lo`` over its sensors)."""

    start: float
    end: float
    hi: float
    lo: float
    site_id: str = ""
    location: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


def hold_pieces(
    readings: Sequence[Reading], start: float, end: float, max_gap_s: float = DEFAULT_MAX_GAP_S
) -> list[tuple[float, float, float]]:
    """One sensor's readings (sorted by time) as ``(start, end, value)`` held within ``[start, end)``."""
    pieces: list[tuple[float, float, float]] = []
    for i, reading in enumerate(readings):
        following = readings[i + 1].time if i + 1 < len(readings) else np.inf
        lo = max(reading.time, start)
        hi = min(following, reading.time + max_gap_s, end)
        if hi > lo:
            pieces.append((lo, hi, reading.value))
    return pieces


def _envelope(
    per_sensor: Sequence[list[tuple[float, float, float]]],
) -> list[tuple[float, float, float, float]]:
    """Merge several sensors' pieces into ``(start, end, hi, lo)`` over the time any has data."""
    if len(per_sensor) == 1:
        return [(s, e, v, v) for s, e, v in per_sensor[0]]
    edges = sorted({t for pieces in per_sensor for s, e, _ in pieces for t in (s, e)})
    index = [0] * len(per_sensor)
    merged: list[tuple[float, float, float, float]] = []
    for a, b in itertools.pairwise(edges):
        values = []
        for k, pieces in enumerate(per_sensor):
            while index[k] < len(pieces) and pieces[index[k]][1] <= a:
                index[k] += 1
            if index[k] < len(pieces) and pieces[index[k]][0] <= a:
                values.append(pieces[index[k]][2])
        if values:
            merged.append((a, b, max(values), min(values)))
    return merged


def zone_pieces(
    readings: Iterable[Reading],
    start: float,
    end: float,
    *,
    site_id: str = "",
    location: str = "",
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> list[Piece]:
    """A zone's temperature over ``[start, end)`` from all its sensors' readings."""
    by_sensor: dict[str, list[Reading]] = defaultdict(list)
    for reading in readings:
        by_sensor[reading.sensor_id].append(reading)
    per_sensor = []
    for sensor in sorted(by_sensor):
        pieces = hold_pieces(sorted(by_sensor[sensor], key=lambda r: r.time), start, end, max_gap_s)
        if pieces:
            per_sensor.append(pieces)
    if not per_sensor:
        return []
    return [Piece(s, e, hi, lo, site_id, location) for s, e, hi, lo in _envelope(per_sensor)]


def clip(pieces: Iterable[Piece], since: float | None, until: float | None) -> list[Piece]:
    """The pieces inside ``[since, until)``, cut at the window's edges."""
    lo, hi = (-np.inf if since is None else since), (np.inf if until is None else until)
    out = []
    for p in pieces:
        s, e = max(p.start, lo), min(p.end, hi)
        if e > s:
            out.append(Piece(s, e, p.hi, p.lo, p.site_id, p.location))
    return out


def observed_seconds(pieces: Iterable[Piece]) -> float:
    return float(sum(p.duration for p in pieces))


def mkt_of(
    pieces: Sequence[Piece], activation_energy_kj: float = DEFAULT_ACTIVATION_ENERGY_KJ
) -> float | None:
    """Time-weighted mean kinetic temperature (°C) of the pieces' ``hi`` values; None without data."""
    used = [p for p in pieces if p.duration > 0]
    if not used:
        return None
    temps_k = np.array([p.hi for p in used], dtype=np.float64) + ZERO_CELSIUS_K
    weights = np.array([p.duration for p in used], dtype=np.float64)
    log_mean = log_mean_arrhenius(temps_k, weights, activation_energy_kj)
    return float((activation_energy_kj / GAS_CONSTANT_KJ) / -log_mean - ZERO_CELSIUS_K)


@dataclass(frozen=True, slots=True)
class Episode:
    """One continuous excursion: beyond ``limit`` from ``start`` to ``end`` at one location."""

    direction: str  # "above" | "below"
    limit: float
    start: float
    end: float
    peak: float
    site_id: str
    location: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Excursions:
    above_s: float = 0.0
    below_s: float = 0.0
    episodes: tuple[Episode, ...] = field(default_factory=tuple)


def excursions(pieces: Sequence[Piece], min_c: float | None, max_c: float | None) -> Excursions:
    """Time above ``max_c`` (by ``hi``) and below ``min_c`` (by ``lo``), with merged episodes.

    Touching pieces beyond the same limit at the same location form one episode; a gap in the
    data ends an episode (what happened during the gap is unknown, not an excursion).
    """
    episodes: list[Episode] = []
    totals = {"above": 0.0, "below": 0.0}
    for direction, limit in (("above", max_c), ("below", min_c)):
        if limit is None:
            continue
        current: Episode | None = None
        for p in sorted(pieces, key=lambda q: q.start):
            value = p.hi if direction == "above" else p.lo
            beyond = value > limit if direction == "above" else value < limit
            if not beyond:
                _close(current, episodes)
                current = None
                continue
            totals[direction] += p.duration
            if current is not None and current.end == p.start and current.location == p.location:
                peak = max(current.peak, value) if direction == "above" else min(current.peak, value)
                current = Episode(direction, limit, current.start, p.end, peak, p.site_id, p.location)
            else:
                _close(current, episodes)
                current = Episode(direction, limit, p.start, p.end, value, p.site_id, p.location)
        _close(current, episodes)
    episodes.sort(key=lambda e: (e.start, e.direction))
    return Excursions(totals["above"], totals["below"], tuple(episodes))


def _close(current: Episode | None, episodes: list[Episode]) -> None:
    if current is not None:
        episodes.append(current)


def hold_series(pieces: Sequence[Piece], unobserved_c: float) -> tuple[list[float], list[float]]:
    """Pieces as a sample-and-hold series for :func:`cloud.coldchain.shelflife.remaining_shelf_life`
    with ``weighting="hold"``: each gap between pieces is a point at ``unobserved_c`` (the same
    temperature the estimator charges unobserved time at), so no piece's value leaks into a gap.
    """
    times: list[float] = []
    temps: list[float] = []
    ordered = sorted((p for p in pieces if p.duration > 0), key=lambda p: p.start)
    for i, p in enumerate(ordered):
        times.append(p.start)
        temps.append(p.hi)
        following = ordered[i + 1].start if i + 1 < len(ordered) else None
        if following is None or following > p.end:
            times.append(p.end)
            temps.append(unobserved_c)
    return times, temps


__all__ = [
    "DEFAULT_MAX_GAP_S",
    "Episode",
    "Excursions",
    "Move",
    "Piece",
    "Reading",
    "Stay",
    "clip",
    "epoch",
    "excursions",
    "from_epoch",
    "hold_pieces",
    "hold_series",
    "mkt_of",
    "observed_seconds",
    "paths_of",
    "stays_of",
    "zone_pieces",
]
