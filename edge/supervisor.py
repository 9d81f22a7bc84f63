"""The one reconnect policy of the edge: rerun a device coroutine forever, with back-off.

A device coroutine (``connect_and_run``) opens its port / connection, marks its
:class:`DeviceHealthState` connected, and runs until the device fails, raising
:class:`devices.errors.DeviceError` (usually ``TransportError``) or ``OSError``. :func:`supervise`
then waits a capped exponential delay with full jitter and calls it again. A run that lasted at
least ``healthy_s`` resets the back-off, so a device that drops once a day reconnects quickly.

Anything else escaping the coroutine is a bug, not a device failure: it is NOT swallowed here; it
propagates and stops the agent loudly.

Transitions are logged once ("lost", "recovered"), not every failed attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from devices.errors import DeviceError
from edge.clock import Clock
from shelfsense.contract import DeviceHealth, Event

log = logging.getLogger(__name__)


class Backoff:
    """Capped exponential back-off with full jitter: ``uniform(0, min(maximum, initial * 2**n))``.

    Full jitter spreads the retries of many edges (or devices) that failed at the same moment.
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def cap(self) -> float:
        """The upper bound of the next delay."""
        return min(self.maximum, self.initial * 2 ** min(self.attempt, 62))

    def next(self) -> float:
        delay = self._rng.uniform(0, self.cap())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class DeviceHealthState:
    """Mutable health of one device connection, snapshotted into :class:`DeviceHealth` events."""

    device_id: str
    connected: bool = False
    last_frame_at: datetime | None = None
    frames_ok: int = 0
    frames_bad: int = 0
    reconnects: int = 0
    lost: bool = False  # set after a failure, cleared (and logged) by the next successful connect
    # The last frame before the latest failure: a reconnect faster than the agent's cycle still
    # shows the portal an outage from here (see edge.agent.report_reader).
    heard_before_loss: datetime | None = None

    def mark_connected(self) -> None:
        if not self.connected and self.lost:
            log.warning("device %s recovered (after %d reconnects in total)", self.device_id, self.reconnects)
        elif not self.connected:
            log.info("device %s connected", self.device_id)
        self.connected = True
        self.lost = False

    def frame_ok(self, count: int, at: datetime) -> None:
        self.frames_ok += count
        self.last_frame_at = at

    def heard(self, at: datetime) -> None:
        """A frame that carries no data (keepalive, heartbeat answer) still proves the link."""
        if self.last_frame_at is None or at > self.last_frame_at:
            self.last_frame_at = at

    def alive(self, now: datetime, silence_limit_s: float) -> bool:
        """Connected and heard within ``silence_limit_s``."""
        return (
            self.connected
            and self.last_frame_at is not None
            and (now - self.last_frame_at).total_seconds() <= silence_limit_s
        )

    def frame_bad(self, count: int = 1) -> None:
        self.frames_bad += count

    def to_event(self, at: datetime) -> DeviceHealth:
        return DeviceHealth(
            device_id=self.device_id,
            connected=self.connected,
            last_frame_at=self.last_frame_at,
            frames_ok=self.frames_ok,
            frames_bad=self.frames_bad,
            reconnects=self.reconnects,
            at=at,
        )


async def wait_or_stop(stop_event: asyncio.Event, timeout_s: float) -> bool:
    """Sleep ``timeout_s`` unless ``stop_event`` is set first; returns True if stopping."""
    if stop_event.is_set():
        return True
    try:
        await asyncio.wait_for(stop_event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


async def _run_until_stopped(coro: Awaitable[None], stop_event: asyncio.Event) -> None:
    """Run ``coro`` until it ends or the stop event is set (then it is cancelled)."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.ensure_future(stop_event.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
        # Re-raise the device's failure (or swallow the CancelledError we caused on stop).
        try:
            await task
        except asyncio.CancelledError:
            if not stop_event.is_set():
                raise


async def supervise(
    name: str,
    connect_and_run: Callable[[], Awaitable[None]],
    health: DeviceHealthState,
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
    stop_event: asyncio.Event | None = None,
    *,
    healthy_s: float = 10.0,
    rng: random.Random | None = None,
) -> None:
    """Rerun ``connect_and_run`` until ``stop_event`` is set; returns then."""
    stop = stop_event or asyncio.Event()
    backoff = Backoff(backoff_initial, backoff_max, rng)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        reason: str
        try:
            await _run_until_stopped(connect_and_run(), stop)
            reason = "connection ended"
        except (DeviceError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        was_connected = health.connected
        health.connected = False
        health.heard_before_loss = health.last_frame_at
        if stop.is_set():
            return
        if loop.time() - started >= healthy_s:
            backoff.reset()
        if was_connected:
            log.warning("device %s lost: %s", name, reason)
        elif not health.lost:
            log.warning("device %s unavailable: %s (retrying with back-off)", name, reason)
        else:
            log.debug("device %s still unavailable: %s", name, reason)
        health.lost = True
        health.reconnects += 1
        if await wait_or_stop(stop, backoff.next()):
            return


async def emit_health_periodically(
    states: Iterable[DeviceHealthState] | Mapping[str, DeviceHealthState],
    submit: Callable[[Sequence[Event]], Awaitable[object]],
    interval_s: float,
    stop_event: asyncio.Event,
    clock: Clock,
) -> None:
    """Every ``interval_s`` submit one :class:`DeviceHealth` event per device (and once at stop)."""
    items = list(states.values()) if isinstance(states, Mapping) else list(states)
    while True:
        stopping = await wait_or_stop(stop_event, interval_s)
        now = clock.now()
        if items:
            await submit([state.to_event(now) for state in items])
        if stopping:
            return
