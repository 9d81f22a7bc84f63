"""The reconnect supervisor: back-off shape, reconnect counting, reset after a healthy run, stop."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence

import pytest

from devices.errors import TransportError
from edge.clock import EdgeClock
from edge.supervisor import Backoff, DeviceHealthState, emit_health_periodically, supervise
from shelfsense.contract import DeviceHealth, Event


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    caps = []
    for _ in range(8):
        caps.append(backoff.cap())
        assert 0 <= backoff.next() <= caps[-1]
    assert caps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    delays = [Backoff(1, 1, random.Random(seed)).next() for seed in range(50)]
    assert len(set(delays)) == 50  # jittered, not synchronized
    backoff.reset()
    assert backoff.cap() == 0.5


async def test_supervise_reconnects_after_failures_and_stops_promptly() -> None:
    health = DeviceHealthState("reader-1")
    stop = asyncio.Event()
    attempts = 0
    running = asyncio.Event()

    async def flaky_device() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 4:
            raise TransportError(f"port vanished ({attempts})")
        health.mark_connected()
        running.set()
        await asyncio.Event().wait()  # a healthy device runs until cancelled

    task = asyncio.create_task(supervise("reader-1", flaky_device, health, 0.01, 0.05, stop))
    await asyncio.wait_for(running.wait(), 5)
    assert (attempts, health.reconnects, health.connected) == (5, 4, True)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert not health.connected


async def test_healthy_period_resets_backoff() -> None:
    health = DeviceHealthState("probe")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def device() -> None:
        starts.append(loop.time())
        if len(starts) == 8:
            stop.set()
        # Runs 0.15 s (>= healthy_s) then drops: a device that is fine between rare glitches.
        await asyncio.sleep(0.15)
        raise TransportError("glitch")

    # initial 0.2, max 10: without the reset, the 7th delay could be up to 10 s.
    await asyncio.wait_for(
        supervise("probe", device, health, 0.2, 10.0, stop, healthy_s=0.1, rng=random.Random(0)), 5
    )
    gaps = [b - a - 0.15 for a, b in itertools.pairwise(starts)]
    assert max(gaps) < 0.2 + 0.05
    assert health.reconnects == 7


async def test_a_bug_in_the_device_coroutine_is_not_swallowed() -> None:
    async def buggy() -> None:
        raise KeyError("programming error")

    with pytest.raises(KeyError):
        await supervise("x", buggy, DeviceHealthState("x"), 0.01, 0.02, asyncio.Event())


async def test_health_events_are_emitted_periodically_and_at_stop() -> None:
    state = DeviceHealthState("reader-1", frames_ok=3, frames_bad=1, reconnects=2)
    stop = asyncio.Event()
    batches: list[list[Event]] = []

    async def submit(events: Sequence[Event]) -> None:
        batches.append(list(events))
        if len(batches) == 2:
            stop.set()

    await asyncio.wait_for(emit_health_periodically([state], submit, 0.02, stop, EdgeClock()), 2)
    assert len(batches) == 3  # two periodic ones, one final at stop
    event = batches[0][0]
    assert isinstance(event, DeviceHealth)
    assert (event.device_id, event.frames_ok, event.frames_bad, event.reconnects) == ("reader-1", 3, 1, 2)
