"""Heavy reads off the API's event loop, bounded, and cancelled when their client has gone.

A heavy read (``cloud.reads.heavy_paths``: lots, FEFO, KPIs, EPCIS events...) spends most of its time
in Python: decoding rows, shaping them, validating and serialising the answer. On the event loop that
serves ingest and ``/healthz`` this work is time nothing else runs, which is how four clients polling
the Lots page used to time out the edges. So :class:`ReadGate`:

- runs each heavy GET on :class:`ReadLoop`, an event loop in its own thread with its own read engine
  (asyncpg connections belong to the loop that made them). The API loop only relays the messages;
  Python's thread switching then gives it the interpreter within milliseconds of wanting it;
- admits at most ``heavy_concurrency`` of them at once; up to ``heavy_queue`` more wait at most
  ``heavy_wait_s`` for a slot; anything beyond is answered at once with 503 ``busy`` and
  ``Retry-After`` (a bounded queue instead of an unbounded pile of requests nobody waits for);
- cancels the work of every GET (heavy or not) whose client disconnected: the task is cancelled
  (asyncpg then cancels the statement on the server) and a SQLite statement is interrupted by the
  read engine's progress handler (cloud.core.pools).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.api.handlers import error_response
from cloud.core.metrics import HEAVY_READS, HEAVY_READS_REFUSED
from cloud.core.pools import RequestToken, abandon, bind_request
from shelfsense.config import ReadSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")
JobContext = contextlib.AbstractAsyncContextManager[None]

# Where a request run on the read loop finds that loop's engines (cloud.api.deps reads it).
ENGINES_KEY = "shelfsense.engines"


class ReadLoop:
    """An event loop in a daemon thread, with the engines its requests use (main, read); they
    connect on that loop only, and :meth:`stop` disposes them there. It also hosts the background
    jobs that need nothing of the API loop (:meth:`hosting`)."""

    def __init__(self, name: str = "heavy-reads") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.engines: tuple[AsyncEngine, AsyncEngine] | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, engines: tuple[AsyncEngine, AsyncEngine]) -> None:
        self._thread.start()
        self.engines = engines

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @contextlib.asynccontextmanager
    async def hosting(self, *contexts: Callable[[], JobContext]) -> AsyncIterator[None]:
        """Enter ``contexts`` (background jobs) on this loop for the lifetime of the context, so
        their work runs here and not on the API's loop; exits them there, in reverse order."""
        ready: concurrent.futures.Future[asyncio.Event] = concurrent.futures.Future()

        async def host() -> None:
            stop = asyncio.Event()
            async with contextlib.AsyncExitStack() as stack:
                for make in contexts:
                    await stack.enter_async_context(make())
                ready.set_result(stop)
                await stop.wait()

        hosted: asyncio.Future[None] = asyncio.wrap_future(self.submit(host()))
        started: asyncio.Future[Any] = asyncio.wrap_future(ready)
        await asyncio.wait([hosted, started], return_when=asyncio.FIRST_COMPLETED)
        if hosted.done():
            hosted.result()  # failed while starting: raise it here
        stop = ready.result()
        try:
            yield
        finally:
            self.loop.call_soon_threadsafe(stop.set)
            await hosted

    async def stop(self) -> None:
        if self.engines is not None:
            for engine in dict.fromkeys(self.engines):
                await asyncio.wrap_future(self.submit(engine.dispose()))
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join)
        self.loop.close()


class _Slots:
    """At most ``concurrency`` holders; at most ``queue`` waiters, each for at most ``wait_s``."""

    def __init__(self, settings: ReadSettings) -> None:
        self._free = asyncio.Semaphore(settings.heavy_concurrency)
        self._queue, self._wait_s = settings.heavy_queue, settings.heavy_wait_s
        self.waiting = 0

    async def acquire(self) -> bool:
        if not self._free.locked():
            await self._free.acquire()
            HEAVY_READS.labels("active").inc()
            return True
        if self.waiting >= self._queue:
            HEAVY_READS_REFUSED.inc()
            return False
        self.waiting += 1
        HEAVY_READS.labels("waiting").inc()
        try:
            await asyncio.wait_for(self._free.acquire(), self._wait_s)
        except TimeoutError:
            HEAVY_READS_REFUSED.inc()
            return False
        finally:
            self.waiting -= 1
            HEAVY_READS.labels("waiting").dec()
        HEAVY_READS.labels("active").inc()
        return True

    def release(self) -> None:
        HEAVY_READS.labels("active").dec()
        self._free.release()


class ReadGate:
    """ASGI middleware; ``app.state.read_loop`` (a started :class:`ReadLoop`) runs the heavy reads,
    without one (an app whose lifespan did not run) they run here, still bounded and cancellable."""

    def __init__(self, app: ASGIApp, settings: ReadSettings) -> None:
        self.app = app
        self.settings = settings
        self.heavy = tuple(settings.heavy_paths)
        self._slots: _Slots | None = None  # made on first use, on the serving loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        if not str(scope["path"]).startswith(self.heavy):
            await _cancel_on_disconnect(lambda r: self.app(scope, r, send), receive)
            return
        slots = self._slots = self._slots or _Slots(self.settings)
        if not await slots.acquire():
            await self._busy(scope, receive, send)
            return
        try:
            await self._run_heavy(scope, receive, send)
        finally:
            slots.release()

    async def _run_heavy(self, scope: Scope, receive: Receive, send: Send) -> None:
        read_loop: ReadLoop | None = getattr(scope["app"].state, "read_loop", None)
        if read_loop is None or read_loop.engines is None:
            await _cancel_on_disconnect(lambda r: self.app(scope, r, send), receive)
            return
        here = asyncio.get_running_loop()
        scope[ENGINES_KEY] = read_loop.engines

        def on_api_loop(step: Awaitable[T]) -> Awaitable[T]:
            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_coro(step), here))

        async def relay_send(message: Message) -> None:
            await on_api_loop(send(message))

        async def run(relay_receive: Receive) -> None:
            async def receive_there() -> Message:
                return await on_api_loop(relay_receive())

            await asyncio.wrap_future(read_loop.submit(_coro(self.app(scope, receive_there, relay_send))))

        await _cancel_on_disconnect(run, receive)

    async def _busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        retry = str(self.settings.retry_after_s)
        response = error_response(
            503, "busy", "too many heavy reads at once; retry later", headers={"Retry-After": retry}
        )
        await response(scope, receive, send)


async def _coro(step: Awaitable[T]) -> T:
    return await step


async def _cancel_on_disconnect(call: Callable[[Receive], Awaitable[None]], receive: Receive) -> None:
    """Run ``call(receive')``; when the client disconnects, cancel it (and mark its request
    abandoned, for SQLite statements running in a driver thread). ``receive'`` sees every message."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    token = RequestToken()
    bind_request(token)  # the task below and whatever it starts inherit this context
    work = asyncio.ensure_future(call(inbox.get))

    async def pump() -> None:
        while True:
            message = await receive()
            await inbox.put(message)
            if message["type"] == "http.disconnect":
                if not work.done():
                    abandon(token)
                    work.cancel()
                return

    watcher = asyncio.ensure_future(pump())
    try:
        await work
    except asyncio.CancelledError:
        client_gone = token.abandoned
        abandon(token)  # nobody will read the answer: stop SQLite statements too
        if not client_gone:
            raise  # we were cancelled (shutdown), not the client gone
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


__all__ = ["ENGINES_KEY", "ReadGate", "ReadLoop"]
