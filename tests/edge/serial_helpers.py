"""What the transport tests share: emit collectors/adapters, a system clock and a condition poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from devices.readings import TagRead
from edge.clock import EdgeClock
from edge.outbox import LedgerWrite
from edge.transports.protocol import Committed, Emission, Emit, Events, TagReads
from shelfsense.contract import Event

# Transports tested alone stamp with an uncorrected clock (the agent would pass its own).
CLOCK = EdgeClock()


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def done(value: Committed | None = None) -> asyncio.Future[Committed]:
    future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
    future.set_result(value or [])
    return future


class Collector:
    """An ``emit`` that keeps every ``(reader_id, read)`` and every event it is handed."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, TagRead]] = []
        self.events: list[Event] = []

    def __call__(self, emission: Emission) -> asyncio.Future[Committed]:
        if isinstance(emission, TagReads):
            self.reads += [(emission.reader_id, read) for read in emission.reads]
        else:
            self.events += emission.events
        return done()


def events_to(sink: Callable[[Sequence[Event]], Awaitable[Any]]) -> Emit:
    """An ``emit`` for transports that emit events (not durable): ``sink(events)`` commits them."""

    def emit(emission: Emission) -> asyncio.Future[Committed]:
        assert isinstance(emission, Events) and not emission.durable
        return asyncio.ensure_future(_committed(sink(emission.events)))

    return emit


def durable(sink: Callable[..., Awaitable[Any]]) -> Emit:
    """An ``emit`` for the MQTT transport: every emission must be durable; ``sink(events,
    extras=...)`` commits them (``OutboxWriter.submit`` fits)."""

    def emit(emission: Emission) -> asyncio.Future[Committed]:
        assert isinstance(emission, Events) and emission.durable, "MQTT must emit durable events"
        extras: Sequence[LedgerWrite] = emission.extras
        return asyncio.ensure_future(_committed(sink(emission.events, extras=extras)))

    return emit


async def _committed(result: Awaitable[Any]) -> Committed:
    value = await result
    return list(value) if isinstance(value, list) else []
