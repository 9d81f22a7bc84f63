"""Deterministic demo scenarios: pallets crossing dock portals and a cold room that warms up.

Everything here is a *pure function of elapsed seconds* ``t``: the same scenario and ``t`` always give
the same tags, RSSI values and temperatures. Simulators sample it (through :class:`ScenarioRunner`,
which binds ``t`` to the wall clock); tests evaluate it at any ``t`` directly, without waiting.

The timeline repeats every ``cycle_s`` seconds. Each cycle brings *new* cases (the SGTIN serial
numbers carry the cycle number), so the stock inside grows by ``pallets_in - pallets_out`` pallets
per cycle and every passage is a fresh one for the edge.

A passage of one pallet through a portal lasts ``passage_s`` (scaled with the cycle, at least
``min_passage_s``). Entering, the pallet is first strong on the *outer* reader (RSSI peaking near
``PEAK_RSSI``) while the inner reader hears it only weakly, then strong on the *inner* reader, then
gone; during most of the passage each reader also hears the pallet weakly (about ``EDGE_RSSI``,
reflections). Leaving is the mirror image. Which reader peaked first is what the edge uses to decide the
direction.

Scenario files are TOML (PyYAML is not a dependency) validated by :class:`ScenarioSpec`; see
``simulators/scenarios/*.toml`` and :func:`load_scenario`.
"""

from __future__ import annotations

import math
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devices.epc import encode_sgtin96

Zone = Literal["outer", "inner"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

PEAK_RSSI = -45.0  # dBm at the moment the pallet is right under a reader's antenna
EDGE_RSSI = -70.0  # dBm at the border of a reader's field; weaker reads are not reported
CROSSTALK_SPAN = (0.1, 0.9)  # part of a passage during which both readers hear the pallet
RSSI_JITTER_DB = 1  # +- dB of per-read jitter, like a real reader
SERIAL_BITS = 38  # SGTIN-96 serial field width
BASE_PASSAGE_CYCLE_S = 60.0  # passage_s is given for this cycle length and scaled with it


class ScenarioError(ValueError):
    """A scenario file or spec is invalid; the message names the offending key."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExitSpec(_Spec):
    """``pallets`` pallets leave through the portal one after another, the first at fraction ``at``."""

    at: Fraction
    pallets: Annotated[int, Field(ge=1)] = 1


class PortalSpec(_Spec):
    """One dock door with an outer and an inner reader."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]
    pallets_in: Annotated[int, Field(ge=0, le=100)] = 3
    cases_per_pallet: Annotated[int, Field(ge=1, le=500)] = 8
    # Entries start evenly spread over this part of the cycle (fractions of cycle_s).
    entry_window: tuple[Fraction, Fraction] = (0.02, 0.40)
    exits: list[ExitSpec] = [ExitSpec(at=0.60, pallets=1)]

    @model_validator(mode="after")
    def _window_ordered(self) -> PortalSpec:
        if self.entry_window[0] > self.entry_window[1]:
            raise ValueError("entry_window must be [start, end] with start <= end")
        if sum(e.pallets for e in self.exits) > self.pallets_in:
            raise ValueError("more pallets exit than entered in the cycle")
        return self


class CompressorFailure(_Spec):
    """The compressor stops at ``start`` and runs again at ``end``; the room drifts to ``peak_c``."""

    kind: Literal["compressor_failure"] = "compressor_failure"
    start: Fraction = 0.45
    end: Fraction = 0.75
    peak_c: float = 11.0
    ramp: Annotated[float, Field(gt=0.0, le=0.5)] = 0.10  # fraction of the cycle to warm / cool

    @model_validator(mode="after")
    def _ordered(self) -> CompressorFailure:
        if self.end <= self.start:
            raise ValueError("compressor_failure.end must be after start")
        return self


class DoorOpening(_Spec):
    """A door stands open for ``duration`` (fraction of the cycle): a short warm, humid bump."""

    kind: Literal["door_open"] = "door_open"
    at: Fraction
    duration: Annotated[float, Field(gt=0.0, le=0.5)] = 0.03
    rise_c: float = 1.5
    humidity_rise: float = 5.0


ColdRoomEvent = Annotated[CompressorFailure | DoorOpening, Field(discriminator="kind")]


class ColdRoomSpec(_Spec):
    base_c: float = 4.0
    noise_c: Annotated[float, Field(ge=0.0, le=2.0)] = 0.2  # +- amplitude of slow sensor noise
    humidity_base: Annotated[float, Field(ge=0.0, le=100.0)] = 62.0
    humidity_noise: Annotated[float, Field(ge=0.0, le=20.0)] = 2.5
    humidity_range: tuple[float, float] = (55.0, 70.0)
    events: list[ColdRoomEvent] = [CompressorFailure()]


FaultKind = Literal[
    "noise", "corrupt", "drop", "disconnect", "reboot", "stuck", "drift", "collision", "absurd"
]


class FaultEvent(_Spec):
    """A timed fault, applied through the simulators' fault hooks (see :mod:`simulators.faults`).

    It fires once per cycle at ``at`` (fraction of the cycle) or ``at_s`` (seconds into the cycle).
    ``target`` names simulators: ``<portal>.outer`` / ``<portal>.inner``, ``<portal>`` (both
    readers), ``probe`` (the Modbus bus), ``mqtt``, or ``*`` (every simulator with the hook).
    ``count``: noise bytes, corrupted / dropped frames, colliding tags or absurd answers.
    ``duration_s``: how long a disconnect, reboot, stuck sensor, drift or collision lasts.
    ``value``: the stuck temperature (default: whatever it reads when it sticks), the drift in degC
    per minute, or the absurd temperature (default 300 degC).
    """

    kind: FaultKind
    at: Fraction | None = None
    at_s: Annotated[float, Field(ge=0.0)] | None = None
    target: Annotated[str, Field(min_length=1)] = "*"
    count: Annotated[int, Field(ge=1, le=100_000)] = 1
    duration_s: Annotated[float, Field(gt=0.0)] = 2.0
    value: float | None = None

    @model_validator(mode="after")
    def _one_time(self) -> FaultEvent:
        if (self.at is None) == (self.at_s is None):
            raise ValueError("give exactly one of at (fraction of the cycle) or at_s (seconds)")
        if self.kind == "drift" and self.value is None:
            raise ValueError("a drift needs value (degC per minute)")
        return self

    def offset_s(self, cycle_s: float) -> float:
        """Seconds into the cycle at which the fault fires."""
        return self.at * cycle_s if self.at is not None else float(self.at_s or 0.0)


class ScenarioSpec(_Spec):
    """The whole scenario as written in a TOML file; all times are fractions of ``cycle_s``."""

    name: str = "demo"
    cycle_s: Annotated[float, Field(gt=0.0)] = 60.0
    seed: Annotated[int, Field(ge=0)] = 7
    company_prefix: Annotated[str, Field(pattern=r"^[0-9]{6,12}$")] = "0614141"
    item_references: Annotated[list[str], Field(min_length=1)] = ["112345", "112346", "212347"]
    passage_s: Annotated[float, Field(gt=0.0)] = 4.0
    min_passage_s: Annotated[float, Field(gt=0.0)] = 3.0
    portals: Annotated[list[PortalSpec], Field(min_length=1)] = [PortalSpec(id="dock-1")]
    cold_room: ColdRoomSpec = ColdRoomSpec()
    events: list[FaultEvent] = []

    @field_validator("item_references")
    @classmethod
    def _digits(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            if not ref.isdigit():
                raise ValueError(f"item reference {ref!r} must be digits")
        return refs

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioSpec:
        for ref in self.item_references:
            if len(self.company_prefix) + len(ref) != 13:
                raise ValueError(
                    f"company prefix {self.company_prefix!r} + item reference {ref!r} must have 13 digits"
                )
        ids = [p.id for p in self.portals]
        if len(set(ids)) != len(ids):
            raise ValueError("portal ids must be unique")
        for index, event in enumerate(self.events):
            if event.offset_s(self.cycle_s) >= self.cycle_s:
                raise ValueError(f"events.{index}: at_s {event.at_s} is beyond the {self.cycle_s} s cycle")
        return self

    @property
    def passage_duration_s(self) -> float:
        return max(self.min_passage_s, self.passage_s * self.cycle_s / BASE_PASSAGE_CYCLE_S)


@dataclass(frozen=True, slots=True)
class Passage:
    """One pallet crossing one portal within a cycle (times in seconds from the cycle start)."""

    portal: int
    pallet: int
    direction: Literal["in", "out"]
    start_s: float
    end_s: float


# ----------------------------------------------------------------------------- pure helpers


def _mix(*values: int) -> int:
    """A small, stable integer hash (splitmix64 steps): Python's hash() of str is salted per process."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state


def _unit(*values: int) -> float:
    """Deterministic pseudo-random number in [-1, 1]."""
    return _mix(*values) / 0xFFFFFFFFFFFFFFFF * 2.0 - 1.0


def _smooth_noise(seed: int, channel: int, t: float, spacing_s: float) -> float:
    """Value noise in [-1, 1], linear between knots ``spacing_s`` apart.

    Its slope is bounded by ``2 / spacing_s``, which is what keeps a temperature ramp from crossing
    a limit several times (flicker) when the noise is smaller than the ramp.
    """
    position = t / spacing_s
    knot = math.floor(position)
    frac = position - knot
    a, b = _unit(seed, channel, knot), _unit(seed, channel, knot + 1)
    return a + (b - a) * frac


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


@lru_cache(maxsize=8192)
def _sgtin(company_prefix: str, item_reference: str, serial: int) -> str:
    return encode_sgtin96(company_prefix, item_reference, serial, filter_value=2).upper()


# ----------------------------------------------------------------------------- the model


class DemoScenario:
    """A deterministic scenario; see the module docstring.

    ``DemoScenario(cycle_s, pallets, cases_per_pallet, seed)`` is the single-portal demo; richer
    layouts come from a :class:`ScenarioSpec` (``DemoScenario.from_spec`` / :func:`load_scenario`).
    """

    def __init__(
        self, cycle_s: float = 60.0, pallets: int = 3, cases_per_pallet: int = 8, seed: int = 7
    ) -> None:
        spec = ScenarioSpec(
            cycle_s=cycle_s,
            seed=seed,
            portals=[PortalSpec(id="dock-1", pallets_in=pallets, cases_per_pallet=cases_per_pallet)],
        )
        self._setup(spec)

    @classmethod
    def from_spec(cls, spec: ScenarioSpec) -> DemoScenario:
        scenario = cls.__new__(cls)
        scenario._setup(spec)
        return scenario

    def _setup(self, spec: ScenarioSpec) -> None:
        self.spec = spec
        self.cycle_s = spec.cycle_s
        self.passage_s = spec.passage_duration_s
        self.portal_ids: tuple[str, ...] = tuple(p.id for p in spec.portals)
        self._passages: tuple[tuple[Passage, ...], ...] = tuple(
            self._plan_portal(index, portal) for index, portal in enumerate(spec.portals)
        )
        # Serial numbers: one block per cycle, one sub-block per portal, so each cycle brings new cases.
        self._cases_per_cycle = sum(p.pallets_in * p.cases_per_pallet for p in spec.portals)
        offsets, running = [], 0
        for portal in spec.portals:
            offsets.append(running)
            running += portal.pallets_in * portal.cases_per_pallet
        self._portal_serial_offset = tuple(offsets)

    def _plan_portal(self, index: int, portal: PortalSpec) -> tuple[Passage, ...]:
        cycle, d = self.cycle_s, self.passage_s
        start, end = portal.entry_window[0] * cycle, portal.entry_window[1] * cycle
        n = portal.pallets_in
        spacing = max(0.0, (end - start - d) / (n - 1)) if n > 1 else 0.0
        passages = [Passage(index, k, "in", start + k * spacing, start + k * spacing + d) for k in range(n)]
        leaving = 0  # pallets leave first-in, first-out
        for exit_spec in portal.exits:
            for k in range(exit_spec.pallets):
                begin = exit_spec.at * cycle + k * d
                entered = passages[leaving]
                if begin < entered.end_s:
                    raise ScenarioError(
                        f"portal {portal.id!r}: pallet {leaving} would leave at {begin:.1f} s "
                        f"before it finished entering at {entered.end_s:.1f} s"
                    )
                passages.append(Passage(index, leaving, "out", begin, begin + d))
                leaving += 1
        for passage in passages:
            if passage.end_s > cycle:
                raise ScenarioError(
                    f"portal {portal.id!r}: a passage ends at {passage.end_s:.1f} s, after the "
                    f"{cycle:.1f} s cycle (cycle too short for {d:.1f} s passages?)"
                )
        return tuple(sorted(passages, key=lambda p: p.start_s))

    # --------------------------------------------------------------- identities

    def _split(self, t: float) -> tuple[int, float]:
        if t < 0:
            raise ValueError("scenario time must be >= 0")
        cycle = math.floor(t / self.cycle_s)
        return cycle, t - cycle * self.cycle_s

    def _portal_index(self, portal: str | None) -> int:
        if portal is None:
            return 0
        try:
            return self.portal_ids.index(portal)
        except ValueError:
            raise KeyError(f"unknown portal {portal!r}; scenario has {list(self.portal_ids)}") from None

    def pallet_epcs(self, cycle: int, portal: int, pallet: int) -> list[str]:
        """The SGTIN-96 EPCs (upper-case hex) of the cases on one pallet in one cycle."""
        spec = self.spec
        portal_spec = spec.portals[portal]
        prefix = (spec.seed % 256) << (SERIAL_BITS - 8)
        first = cycle * self._cases_per_cycle + self._portal_serial_offset[portal]
        first += pallet * portal_spec.cases_per_pallet
        refs = spec.item_references
        epcs = []
        for case in range(portal_spec.cases_per_pallet):
            serial = prefix | ((first + case) % (1 << (SERIAL_BITS - 8)))
            ref = refs[(pallet + case) % len(refs)]
            epcs.append(_sgtin(spec.company_prefix, ref, serial))
        return epcs

    def passages(self, portal: str | None = None) -> tuple[Passage, ...]:
        """The passages of one cycle through ``portal`` (default: the first), sorted by start."""
        return self._passages[self._portal_index(portal)]

    # --------------------------------------------------------------- reader fields

    def field(self, zone: Zone, t: float, portal: str | None = None) -> list[tuple[str, int]]:
        """Tags ``(epc_hex, rssi_dbm)`` the ``zone`` reader of ``portal`` hears at time ``t``."""
        if zone not in ("outer", "inner"):
            raise ValueError(f"zone must be 'outer' or 'inner', got {zone!r}")
        cycle, tc = self._split(t)
        index = self._portal_index(portal)
        tags: list[tuple[str, int]] = []
        for passage in self._passages[index]:
            if passage.start_s <= tc < passage.end_s:
                u = (tc - passage.start_s) / (passage.end_s - passage.start_s)
                tags.extend(self._passage_reads(cycle, passage, zone, u, t))
        return tags

    def outer_field(self, t: float, portal: str | None = None) -> list[tuple[str, int]]:
        return self.field("outer", t, portal)

    def inner_field(self, t: float, portal: str | None = None) -> list[tuple[str, int]]:
        return self.field("inner", t, portal)

    def _passage_reads(
        self, cycle: int, passage: Passage, zone: Zone, u: float, t: float
    ) -> list[tuple[str, int]]:
        # Entering: outer peaks at 30 % of the passage, inner at 70 %; leaving: the reverse.
        first = "outer" if passage.direction == "in" else "inner"
        center = 0.3 if zone == first else 0.7
        base = PEAK_RSSI - (PEAK_RSSI - EDGE_RSSI) * ((u - center) / 0.3) ** 2
        if CROSSTALK_SPAN[0] <= u <= CROSSTALK_SPAN[1]:
            # Reflections: the other reader hears the pallet weakly for most of the passage, so
            # "which reader saw it first" alone is not enough; the order of the peaks is.
            base = max(base, EDGE_RSSI)
        if base < EDGE_RSSI:
            return []
        read_slot = math.floor(t * 20)  # jitter changes at most 20 times per second
        zone_code = 1 if zone == "outer" else 2
        reads = []
        for case, epc in enumerate(self.pallet_epcs(cycle, passage.portal, passage.pallet)):
            # A case's own offset (where it sits on the pallet) plus per-read jitter.
            offset = round(2.0 * _unit(self.spec.seed, cycle, passage.portal, passage.pallet, case))
            jitter = round(RSSI_JITTER_DB * _unit(self.spec.seed, read_slot, zone_code, case, passage.pallet))
            reads.append((epc, max(-90, min(-30, round(base) + offset + jitter))))
        return reads

    # --------------------------------------------------------------- stock expectations

    def inside_epcs(self, t: float, portal: str | None = None) -> set[str]:
        """EPCs inside (through ``portal``, or all portals) once every passage *finished* by ``t``
        is counted. The edge decides a passage ``settle_s`` after the last read, so compare it
        with ``inside_epcs(t - settle_s - margin)``. Grows with the number of cycles."""
        cycle, tc = self._split(t)
        indices = range(len(self.portal_ids)) if portal is None else [self._portal_index(portal)]
        inside: set[str] = set()
        for index in indices:
            for n in range(cycle + 1):
                for passage in self._passages[index]:
                    if n == cycle and passage.end_s > tc:
                        continue
                    epcs = self.pallet_epcs(n, index, passage.pallet)
                    if passage.direction == "in":
                        inside.update(epcs)
                    else:
                        inside.difference_update(epcs)
        return inside

    def expected(self, t: float, portal: str | None = None) -> int:
        """How many cases are inside after every passage finished by ``t`` (see :meth:`inside_epcs`)."""
        cycle, tc = self._split(t)
        indices = range(len(self.portal_ids)) if portal is None else [self._portal_index(portal)]
        total = 0
        for index in indices:
            cases = self.spec.portals[index].cases_per_pallet
            per_cycle = sum(cases if p.direction == "in" else -cases for p in self._passages[index])
            done = sum(
                cases if p.direction == "in" else -cases for p in self._passages[index] if p.end_s <= tc
            )
            total += cycle * per_cycle + done
        return total

    # --------------------------------------------------------------- faults

    def faults_between(self, t_from: float, t_to: float) -> list[tuple[float, FaultEvent]]:
        """Faults firing in ``[t_from, t_to)`` as ``(t, event)``, in time order (every cycle)."""
        if t_to <= t_from or not self.spec.events:
            return []
        out: list[tuple[float, FaultEvent]] = []
        first, _ = self._split(t_from)
        last = math.floor(t_to / self.cycle_s)
        for cycle in range(first, last + 1):
            for event in self.spec.events:
                t = cycle * self.cycle_s + event.offset_s(self.cycle_s)
                if t_from <= t < t_to:
                    out.append((t, event))
        out.sort(key=lambda item: item[0])
        return out

    # --------------------------------------------------------------- cold room

    def cold_room(self, t: float) -> tuple[float, float]:
        """``(temperature degC, humidity %RH)`` of the cold room at ``t`` (periodic with the cycle)."""
        _, tc = self._split(t)
        room = self.spec.cold_room
        cycle = self.cycle_s
        # Noise knots scale with the cycle so the noise never outruns an event's ramp.
        spacing = max(1.0, cycle / 60.0)
        temperature = room.base_c + room.noise_c * _smooth_noise(self.spec.seed, 1, tc, spacing)
        humidity = room.humidity_base + room.humidity_noise * _smooth_noise(self.spec.seed, 2, tc, spacing)
        x = tc / cycle
        for event in room.events:
            if isinstance(event, CompressorFailure):
                temperature += (event.peak_c - room.base_c) * _failure_shape(event, x)
            else:
                bump = _door_shape(event, x)
                temperature += event.rise_c * bump
                humidity += event.humidity_rise * bump
        low, high = room.humidity_range
        return round(temperature, 2), round(min(high, max(low, humidity)), 1)


def _failure_shape(event: CompressorFailure, x: float) -> float:
    """0 before the failure, rising to 1 over ``ramp``, held, then cooling back to 0 over ``ramp``."""
    if x < event.start:
        return 0.0
    level_at_end = _smoothstep((event.end - event.start) / event.ramp)
    if x < event.end:
        return _smoothstep((x - event.start) / event.ramp)
    return level_at_end * (1.0 - _smoothstep((x - event.end) / event.ramp))


def _door_shape(event: DoorOpening, x: float) -> float:
    """Rises while the door is open, then decays as the evaporator catches up."""
    if x < event.at:
        return 0.0
    u = (x - event.at) / event.duration
    if u <= 1.0:
        return _smoothstep(u)
    return math.exp(-(u - 1.0) * 2.0)


# ----------------------------------------------------------------------------- wall-clock binding


class ScenarioRunner:
    """Binds a scenario to the wall clock: ``t`` is the time since the runner was created.

    Its methods take no arguments, so they plug straight into the simulators
    (``UhfReaderSimulator(runner.outer_field)``, ``ModbusProbeSimulator({1: runner.cold_room})``).
    """

    def __init__(self, scenario: DemoScenario, time_source: Callable[[], float] = time.monotonic) -> None:
        self.scenario = scenario
        self._time = time_source
        self._t0 = time_source()

    def elapsed(self) -> float:
        return max(0.0, self._time() - self._t0)

    def outer_field(self) -> list[tuple[str, int]]:
        return self.scenario.outer_field(self.elapsed())

    def inner_field(self) -> list[tuple[str, int]]:
        return self.scenario.inner_field(self.elapsed())

    def field_source(self, zone: Zone, portal: str | None = None) -> Callable[[], list[tuple[str, int]]]:
        """A zero-argument field callable for one reader of one portal."""
        self.scenario._portal_index(portal)  # fail now, not inside the simulator loop
        return lambda: self.scenario.field(zone, self.elapsed(), portal)

    def cold_room(self) -> tuple[float, float]:
        return self.scenario.cold_room(self.elapsed())

    def expected(self) -> int:
        return self.scenario.expected(self.elapsed())


def load_scenario(path: str | Path) -> DemoScenario:
    """Read a TOML scenario file; raises :class:`ScenarioError` with the offending key."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ScenarioError(f"scenario file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ScenarioError(f"{path}: invalid scenario: {problems}") from exc
    try:
        return DemoScenario.from_spec(spec)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


SCENARIO_DIR = Path(__file__).parent / "scenarios"

__all__ = [
    "SCENARIO_DIR",
    "ColdRoomSpec",
    "CompressorFailure",
    "DemoScenario",
    "DoorOpening",
    "ExitSpec",
    "FaultEvent",
    "Passage",
    "PortalSpec",
    "ScenarioError",
    "ScenarioRunner",
    "ScenarioSpec",
    "load_scenario",
]
