"""Timed faults from a scenario file, applied through the simulators' fault hooks.

A scenario's ``events`` (:class:`simulators.scenario.FaultEvent`) fire once per cycle. The
:class:`FaultScheduler` follows the scenario clock (:class:`simulators.scenario.ScenarioRunner`) and
calls, on every simulator the event targets that has the hook:

============  ===========================================================================
noise         ``inject_noise(count)`` (serial readers, LLRP)
corrupt       ``corrupt_next(count)`` (serial devices), ``set_malformed_next(count)`` (MQTT)
drop          ``drop_next(count)`` (serial devices), ``drop_next_reports(count)`` (LLRP)
disconnect    ``disconnect(duration_s)`` (serial: the pty endpoint goes deaf and mute),
              LLRP: TCP reset
reboot        UHF ``set_rebooting``, PN532 / LLRP ``reboot`` (gone for ``duration_s``)
stuck         ``stuck(value)``, undone after ``duration_s`` (Modbus probes)
drift         ``drift(value)`` degC/min, undone after ``duration_s`` (Modbus probes)
collision     ``collide(count, ...)``: many unknown tags at once (UHF, LLRP)
absurd        ``absurd_next(count, value or 300)``: valid frames, impossible temperature (Modbus)
============  ===========================================================================

Targets: ``<portal>.outer``, ``<portal>.inner``, ``<portal>`` (both), ``probe``, ``mqtt``, ``*``.
An event that reaches no simulator able to apply it is a :class:`ScenarioError` at start-up, not a
silent no-op (a target that is known but not running, e.g. ``mqtt`` without a broker, is skipped).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from simulators.scenario import FaultEvent, ScenarioError, ScenarioRunner

log = logging.getLogger(__name__)

HORIZON_S = 1.0  # how far ahead the scheduler looks each round


def _collide(sim: Any, event: FaultEvent) -> Any:
    if hasattr(sim, "reads_per_s") and "rounds" in inspect.signature(sim.collide).parameters:
        return sim.collide(event.count, rounds=max(1, round(event.duration_s * sim.reads_per_s)))  # LLRP
    return sim.collide(event.count, event.duration_s)


def _undo_later(delay: float, undo: Callable[[], Any]) -> None:
    asyncio.get_running_loop().call_later(delay, undo)


def _stuck(sim: Any, event: FaultEvent) -> None:
    value = event.value
    if value is None:
        value = sim.reading(sim.slaves[0])[0]  # stick at what the first probe reads now
    sim.stuck(value)
    _undo_later(event.duration_s, lambda: sim.stuck(None))


def _drift(sim: Any, event: FaultEvent) -> None:
    sim.drift(event.value)
    _undo_later(event.duration_s, lambda: sim.drift(0.0))


def _reboot(sim: Any, event: FaultEvent) -> Any:
    if hasattr(sim, "set_rebooting"):
        return sim.set_rebooting(event.duration_s)
    return sim.reboot(event.duration_s)


def _disconnect(sim: Any, event: FaultEvent) -> Any:
    if inspect.iscoroutinefunction(sim.disconnect):
        return sim.disconnect()  # LLRP: a TCP reset; the client reconnects when it likes
    return sim.disconnect(event.duration_s)


# kind -> [(hook that must exist, how to apply)], first match wins.
_Apply = Callable[[Any, FaultEvent], Any]
_HOOKS: dict[str, list[tuple[str, _Apply]]] = {
    "noise": [("inject_noise", lambda s, e: s.inject_noise(e.count))],
    "corrupt": [
        ("corrupt_next", lambda s, e: s.corrupt_next(e.count)),
        ("set_malformed_next", lambda s, e: s.set_malformed_next(e.count)),
    ],
    "drop": [
        ("drop_next", lambda s, e: s.drop_next(e.count)),
        ("drop_next_reports", lambda s, e: s.drop_next_reports(e.count)),
    ],
    "disconnect": [("disconnect", _disconnect)],
    "reboot": [("set_rebooting", _reboot), ("reboot", _reboot)],
    "stuck": [("stuck", _stuck)],
    "drift": [("drift", _drift)],
    "collision": [("collide", _collide)],
    "absurd": [("absurd_next", lambda s, e: s.absurd_next(e.count, 300.0 if e.value is None else e.value))],
}


def hook_for(sim: Any, kind: str) -> _Apply | None:
    """How ``sim`` applies a fault of ``kind``, or ``None`` if it has no such hook."""
    for name, apply in _HOOKS[kind]:
        if hasattr(sim, name):
            return apply
    return None


class FaultScheduler:
    """Fires a scenario's fault events on time; see the module docstring."""

    def __init__(self, runner: ScenarioRunner, targets: Mapping[str, Sequence[Any]]) -> None:
        self.runner = runner
        self.targets = {name: list(sims) for name, sims in targets.items()}
        self.applied: list[tuple[float, str, str, int]] = []  # (t, kind, target, simulators hit)
        self._tasks: set[asyncio.Task[Any]] = set()
        for index, event in enumerate(runner.scenario.spec.events):
            sims = self.resolve(event.target)
            if event.target in self.targets and not sims:
                log.info("events.%d: %s is not running; fault skipped", index, event.target)
                continue
            if not sims:
                raise ScenarioError(f"events.{index}: target {event.target!r} names no simulator")
            if not any(hook_for(sim, event.kind) for sim in sims):
                raise ScenarioError(
                    f"events.{index}: no simulator in {event.target!r} can apply a {event.kind!r} fault"
                )

    def resolve(self, target: str) -> list[Any]:
        if target in ("*", "all"):
            return [sim for sims in self.targets.values() for sim in sims]
        if target in self.targets:
            return self.targets[target]
        return [sim for name, sims in self.targets.items() if name.startswith(f"{target}.") for sim in sims]

    def apply(self, event: FaultEvent) -> int:
        """Apply one event now; returns how many simulators it reached."""
        hit = 0
        for sim in self.resolve(event.target):
            apply = hook_for(sim, event.kind)
            if apply is None:
                continue
            result = apply(sim, event)
            if isinstance(result, Awaitable):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            hit += 1
        self.applied.append((self.runner.elapsed(), event.kind, event.target, hit))
        log.info("fault %s on %s (%d simulator(s))", event.kind, event.target, hit)
        return hit

    async def run(self) -> None:
        """Apply every event when its time comes, cycle after cycle, until cancelled."""
        scenario = self.runner.scenario
        # Started right after the runner: events at t = 0 still fire (a little late, not never).
        t = self.runner.elapsed()
        if t < HORIZON_S:
            t = 0.0
        try:
            while True:
                horizon = t + HORIZON_S
                for when, event in scenario.faults_between(t, horizon):
                    await asyncio.sleep(max(0.0, when - self.runner.elapsed()))
                    self.apply(event)
                await asyncio.sleep(max(0.0, horizon - self.runner.elapsed()))
                t = horizon
        finally:
            for task in self._tasks:
                task.cancel()

    def close(self) -> None:
        """Nothing to release (the simulators are closed by their owner)."""
