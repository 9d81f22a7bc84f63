"""How the LLRP reader simulator paces and ends an AISpec (LLRP 1.0.1 16.2.4.2.1, 16.2.4.2.1.1).

Pure helpers of :mod:`simulators.llrp_reader`: the shared round pacing of one ROSpec run, the
AISpec's time limit and its tag observation trigger counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices import llrp_triggers as trig
from devices.llrp import TagReport


@dataclass(slots=True)
class AiSpecProgress:
    """What an AISpec's tag observation trigger counts (LLRP 1.0.1 16.2.4.2.1.1)."""

    started: float
    reads: int = 0
    attempts: int = 0
    unique: set[str] = field(default_factory=set)
    last_read: float = 0.0
    last_new_unique: float = 0.0


@dataclass(slots=True)
class Pacer:
    """``reads_per_s`` inventory rounds a second across the AISpecs of one ROSpec run."""

    next_round: float
    period: float


def aispec_deadline(trigger: trig.AiSpecTrigger, started: float) -> float | None:
    """When the AISpec ends by time: its duration, GPI timeout or tag observation timeout."""
    if trigger.kind in (trig.AI_STOP_DURATION, trig.AI_STOP_GPI) and trigger.duration_ms > 0:
        return started + trigger.duration_ms / 1000
    if trigger.observation is not None and trigger.observation.timeout_ms > 0:
        return started + trigger.observation.timeout_ms / 1000
    return None


def observed_enough(
    obs: trig.TagObservation, progress: AiSpecProgress, reports: list[TagReport], now: float
) -> bool:
    """Update the counts with one round and say whether the tag observation trigger fired."""
    progress.attempts += 1
    progress.reads += len(reports)
    if reports:
        progress.last_read = now
    fresh = {r.epc for r in reports} - progress.unique
    if fresh:
        progress.unique |= fresh
        progress.last_new_unique = now
    if obs.kind == trig.OBS_N_TAGS:
        return progress.reads >= obs.n_tags
    if obs.kind == trig.OBS_N_UNIQUE:
        return len(progress.unique) >= obs.n_tags
    if obs.kind == trig.OBS_N_ATTEMPTS:
        return progress.attempts >= obs.n_attempts
    if obs.kind == trig.OBS_SILENCE:
        return now - progress.last_read >= obs.t_ms / 1000
    if obs.kind == trig.OBS_UNIQUE_SILENCE:
        return now - progress.last_new_unique >= obs.t_ms / 1000
    return False
