"""cloud.core.locks.CrossLoopLock: one FIFO line for SQLite writers of every event loop."""

from __future__ import annotations

import asyncio
import threading

from cloud.core.locks import CrossLoopLock


def other_loop() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


async def test_waiters_of_two_loops_get_the_lock_in_arrival_order() -> None:
    lock, order = CrossLoopLock(), []
    loop, thread = other_loop()
    try:
        await lock.acquire()  # held here: everyone below queues

        async def take(name: str) -> None:
            async with lock:
                order.append(name)

        there = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(take("other loop"), loop))
        while not lock._waiters:  # the other loop's writer is queued first
            await asyncio.sleep(0.001)
        here = asyncio.create_task(take("this loop"))
        while len(lock._waiters) < 2:
            await asyncio.sleep(0.001)
        lock.release()
        await asyncio.gather(there, here)
        assert order == ["other loop", "this loop"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def test_a_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = CrossLoopLock()
    await lock.acquire()
    gives_up = asyncio.create_task(lock.acquire())
    while not lock._waiters:
        await asyncio.sleep(0.001)
    lock.release()  # handed to the waiter ...
    gives_up.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(gives_up, return_exceptions=True)
    await asyncio.wait_for(lock.acquire(), 30)  # still free for the next writer
    lock.release()
