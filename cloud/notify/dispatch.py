"""Fan one alert out to every channel at once; a slow or failing channel never holds up the others.

:meth:`AlertDispatcher.dispatch` awaits all channels concurrently, each bounded by ``timeout_s``.
For the ingest path, :meth:`submit` puts alerts on a bounded queue without waiting (when full, the
oldest queued alert is dropped and counted: fresh alerts matter more) and :meth:`run` delivers
them, several alerts in flight at once.

The dispatcher records every result in its :class:`DeliveryLog` as each channel finishes; give the
channels themselves no log when they run under a dispatcher, or results are recorded twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

from cloud.notify.base import AlertMessage, Channel, DeliveryLog, DeliveryResult

log = logging.getLogger(__name__)


class AlertDispatcher:
    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        timeout_s: float = 30.0,
        log: DeliveryLog | None = None,
        max_queued: int = 1000,
        max_in_flight: int = 16,
    ) -> None:
        self.channels = list(channels)
        self.timeout_s = timeout_s
        self.log = log if log is not None else DeliveryLog()
        self._queue: deque[AlertMessage] = deque()
        self._max_queued = max_queued
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[list[DeliveryResult]]] = set()
        self.dropped = 0

    async def _one(self, channel: Channel, alert: AlertMessage) -> DeliveryResult:
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(channel.send(alert), self.timeout_s)
        except TimeoutError:
            error = f"gave up after {self.timeout_s:g} s"
        else:
            self.log.record(result)
            return result
        result = DeliveryResult(
            channel.name, alert.alert_id, alert.delivery_id, False, 0, time.monotonic() - started, error=error
        )
        self.log.record(result)
        return result

    async def dispatch(self, alert: AlertMessage) -> list[DeliveryResult]:
        """Deliver to all channels concurrently; results in channel order."""
        outcomes = await asyncio.gather(*(self._one(c, alert) for c in self.channels), return_exceptions=True)
        results: list[DeliveryResult] = []
        for channel, outcome in zip(self.channels, outcomes, strict=True):
            if isinstance(outcome, DeliveryResult):
                results.append(outcome)
                continue
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            # A bug in one channel must not cost the others their delivery: record it loudly.
            log.error("channel %s crashed delivering %s", channel.name, alert.alert_id, exc_info=outcome)
            failed = DeliveryResult(
                channel.name, alert.alert_id, alert.delivery_id, False, 1, 0.0, error=f"crashed: {outcome!r}"
            )
            self.log.record(failed)
            results.append(failed)
        return results

    def submit(self, alert: AlertMessage) -> bool:
        """Queue an alert without waiting; False when the oldest queued alert had to be dropped."""
        dropped = len(self._queue) >= self._max_queued
        if dropped:
            self._queue.popleft()
            self.dropped += 1
            log.warning("alert queue full (%d): dropped the oldest alert", self._max_queued)
        self._queue.append(alert)
        self._wakeup.set()
        return not dropped

    async def run(self) -> None:
        """Deliver submitted alerts until cancelled; deliveries in flight finish on :meth:`drain`."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._slots.acquire()
                task = asyncio.create_task(self.dispatch(self._queue.popleft()))
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[list[DeliveryResult]]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    @property
    def pending(self) -> int:
        """Alerts queued or in flight."""
        return len(self._queue) + len(self._tasks)

    async def abort(self) -> None:
        """Give up on what is left (shutdown after a drain deadline): queued alerts are dropped and
        counted, deliveries in flight are cancelled, so no retry outlives its channel's client."""
        self.dropped += len(self._queue)
        self._queue.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every queued and in-flight alert has been delivered (or failed)."""
        while self._queue or self._tasks:
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            else:
                await asyncio.sleep(0.01)
