"""A FIFO lock shared by the event loops of one process (the API loop and the read/jobs loop).

SQLite has one writer at a time. Writers of this process queue here in arrival order before BEGIN
IMMEDIATE, whichever loop they run on; without it they would all wait in SQLite's busy handler,
which sleeps and retries (up to 100 ms per nap) with no fairness, and some would starve for seconds.
"""

from __future__ import annotations

import asyncio
import collections
import threading


class CrossLoopLock:
    """``async with lock:``; the lock passes straight to the oldest waiter on release."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = (
            collections.deque()
        )

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._guard:
            if not self._held:
                self._held = True
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._guard:
                if (loop, waiter) in self._waiters:  # not handed over yet: just leave the queue
                    self._waiters.remove((loop, waiter))
                    raise
            if not waiter.cancelled():
                self.release()  # handed over, then we were cancelled: pass it on
            # else _hand_over (scheduled, sees the cancelled waiter) passes it on
            raise

    def release(self) -> None:
        with self._guard:
            if not self._waiters:
                self._held = False
                return
            loop, waiter = self._waiters.popleft()  # ownership moves to it (still held)
        loop.call_soon_threadsafe(_hand_over, self, waiter)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_exc: object) -> None:
        self.release()


def _hand_over(lock: CrossLoopLock, waiter: asyncio.Future[None]) -> None:
    if waiter.cancelled():
        lock.release()  # its owner gave up before it could run: next one
    else:
        waiter.set_result(None)


__all__ = ["CrossLoopLock"]
