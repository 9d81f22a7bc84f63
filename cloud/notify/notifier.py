"""The notifier: who hears an alert transition, in which words, through which queue, and the log.

One :class:`Notifier` lives for the app's lifespan; every feature that tells people something
(cold-chain excursions and gaps, lot expiry, restocking rules' ``notify`` actions, an operator's
acknowledgement) hands it its transitions *after* its commit, and it never blocks the caller:

- channels are built from ``[[cloud.coldchain.channels]]`` through the channel registry;
- the audience follows the contact groups: a new alert goes to the first group, an escalation to
  the next, acknowledgement and resolution to every group told so far; without groups, every
  channel hears everything;
- each channel gets the message in its language (:func:`cloud.alerts.messages.alert_message`)
  and one :class:`~cloud.notify.AlertDispatcher` (its own bounded queue and in-flight slots, so a
  failing, retrying channel never delays the others), behind the alert-storm gate when limits or
  quiet windows are configured;
- delivery results go to the ``alert_deliveries`` table through a small bounded writer task.

Observers (:meth:`Notifier.observe`) see every transition with its English wording; the cold-chain
runtime uses one to annotate InfluxDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.alerts.messages import alert_message
from cloud.coldchain import tables as cc
from cloud.coldchain.service import Notice
from cloud.core import db
from cloud.notify.base import AlertMessage, Channel, DeliveryLog, DeliveryResult
from cloud.notify.destinations import Destinations
from cloud.notify.dispatch import AlertDispatcher
from cloud.notify.registry import build_channel
from cloud.notify.storm import StormGate, Transition
from shelfsense.config import ColdChainSettings

log = logging.getLogger(__name__)

_MAX_PENDING_RESULTS = 10_000
_MAX_TRACKED_DELIVERIES = 50_000
# (the transition, its English message, when it was handed over)
Observer = Callable[[Notice, AlertMessage, datetime], None]


class Notifier:
    """Audience, wording, per-channel dispatch and the delivery log of one cloud process."""

    def __init__(
        self,
        settings: ColdChainSettings,
        engine: AsyncEngine,
        clock: Callable[[], datetime] = db.utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        allowed = Destinations.parse(settings.allowed_destinations)
        self.channels: dict[str, Channel] = {c.name: build_channel(c, allowed) for c in settings.channels}
        self.groups: list[tuple[str, ...]] = [tuple(g) for g in settings.contact_groups]
        self.languages: dict[str, str] = {c.name: c.language for c in settings.channels}
        self._languages = ("en", *sorted(set(self.languages.values()) - {"en"}))
        self.log = DeliveryLog(maxlen=1000, sink=self._on_result)
        self.results_dropped = 0
        self.storm = StormGate(engine, settings, self._send, clock)
        self._observers: list[Observer] = []
        self._dispatchers: dict[str, AlertDispatcher] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: deque[tuple[DeliveryResult, int, str]] = deque()
        self._pending_wakeup = asyncio.Event()
        self._store_lock = asyncio.Lock()
        self._deliveries: OrderedDict[str, tuple[int, str]] = OrderedDict()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._spawn(self._persist_loop(), "alert-deliveries")
        if self.storm.active:
            self._spawn(self.storm.run(), "alert-storm-gate")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def aclose(self, drain_timeout_s: float) -> None:
        """Deliver what is queued (bounded), store the log, close the channels."""
        dispatchers = list(self._dispatchers.values())
        drained = True
        try:
            await asyncio.wait_for(self._drain_all(), drain_timeout_s)
        except TimeoutError:
            drained = False
        for task in self._tasks:  # dispatcher loops and the log writer; deliveries in flight stay
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not drained:
            left = sum(d.pending for d in dispatchers)
            log.error("shutdown: gave up on %d alert deliveries after %.0f s", left, drain_timeout_s)
            await asyncio.gather(*(d.abort() for d in dispatchers))
        with contextlib.suppress(SQLAlchemyError, DBAPIError, OSError):  # logged by _store_pending
            await self._store_pending()
        for channel in self.channels.values():
            closer = getattr(channel, "aclose", None)
            if closer is not None:
                await closer()

    # --- who hears what -------------------------------------------------------------------------

    def observe(self, observer: Observer) -> None:
        """Call ``observer`` for every transition handed to :meth:`notify` (synchronously: it must
        only enqueue)."""
        self._observers.append(observer)

    def audience(self, state: str, level: int) -> tuple[str, ...]:
        if not self.groups:
            return tuple(self.channels)
        level = min(level, len(self.groups) - 1)
        if state == "raised":
            chosen: Iterable[str] = self.groups[0]
        elif state == "escalated":
            chosen = self.groups[level]
        else:
            chosen = [name for group in self.groups[: level + 1] for name in group]
        return tuple(dict.fromkeys(chosen))

    def notify(self, notices: Sequence[Notice]) -> None:
        """Queue messages for these transitions (returns at once)."""
        now = db.utcnow()
        for notice in notices:
            messages = {
                lang: alert_message(notice, at=now, url_template=self.settings.alert_url, language=lang)
                for lang in self._languages
            }
            for observer in self._observers:
                observer(notice, messages["en"], now)
            names = self.audience(notice.state, int(notice.alert.get("escalation_level") or 0))
            if names:
                self._dispatch(notice, messages, names)

    def _dispatch(self, notice: Notice, messages: dict[str, AlertMessage], names: Sequence[str]) -> None:
        for each in messages.values():
            self._deliveries[each.delivery_id] = (int(notice.alert["id"]), notice.state)
        while len(self._deliveries) > _MAX_TRACKED_DELIVERIES:
            self._deliveries.popitem(last=False)
        chosen = {name: messages[self.languages[name]] for name in names}
        if self.storm.active:
            a = notice.alert
            raised = notice.state == "raised"
            self.storm.submit(
                Transition(str(a["site_id"]), str(a["zone"]), raised, chosen, self.storm.clock())
            )
            return
        for name, each in chosen.items():
            self._send(name, each)

    def submit(
        self, channels: Sequence[str], message: AlertMessage | Mapping[str, AlertMessage]
    ) -> list[str]:
        """Queue ``message`` on the named channels (rules' ``notify`` actions, not an alert
        transition: no delivery log row); returns the names no channel is configured for. Given
        one message per language, each channel gets its own language's (else the English one)."""
        for name in dict.fromkeys(channels):
            if name in self.channels:
                self._dispatcher(name).submit(self._in_language(message, name))
        return [name for name in channels if name not in self.channels]

    def _in_language(self, message: AlertMessage | Mapping[str, AlertMessage], channel: str) -> AlertMessage:
        if isinstance(message, AlertMessage):
            return message
        return message.get(self.languages[channel]) or message["en"]

    async def flush(self, now: datetime) -> None:
        """Digests of what quiet hours or the rate limit held, as of ``now`` (the periodic tick);
        transitions still queued for the gate count first."""
        await self.storm.drain()
        await self.storm.flush(now)

    # --- dispatch -------------------------------------------------------------------------------

    def _dispatcher(self, name: str) -> AlertDispatcher:
        """One dispatcher (queue + in-flight slots) per channel: a channel that keeps failing and
        retrying fills only its own slots and queue, never another channel's."""
        dispatcher = self._dispatchers.get(name)
        if dispatcher is None:
            dispatcher = AlertDispatcher([self.channels[name]], log=self.log)
            self._dispatchers[name] = dispatcher
            self._spawn(dispatcher.run(), f"alert-dispatch-{name}")
        return dispatcher

    def _send(self, name: str, message: AlertMessage) -> None:
        self._dispatcher(name).submit(message)

    async def _drain_all(self) -> None:
        await self.storm.drain()
        await asyncio.gather(*(d.drain() for d in list(self._dispatchers.values())))

    # --- delivery log -------------------------------------------------------------------------

    def _on_result(self, result: DeliveryResult) -> None:
        origin = self._deliveries.get(result.delivery_id)
        if origin is None:
            return
        if len(self._pending) >= _MAX_PENDING_RESULTS:
            self._pending.popleft()
            self.results_dropped += 1
        self._pending.append((result, *origin))
        self._pending_wakeup.set()

    async def _store_pending(self) -> None:
        # One store at a time: a caller waiting for the log (wait_delivered) also waits for the
        # background writer's insert in flight.
        async with self._store_lock:
            await self._store_pending_locked()

    async def _store_pending_locked(self) -> None:
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        rows = [
            {
                "alert_id": alert_id,
                "delivery_id": r.delivery_id,
                "event": event,
                "channel": r.channel,
                "ok": r.ok,
                "attempts": r.attempts,
                "status": r.status,
                "error": r.error,
                "elapsed_ms": r.elapsed_s * 1000,
                "at": r.at,
            }
            for r, alert_id, event in batch
        ]
        try:
            async with db.write_transaction(self.engine) as conn:
                await conn.execute(cc.alert_deliveries.insert(), rows)
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            log.warning(
                "delivery log not stored (%s): %d results kept for a retry", type(exc).__name__, len(rows)
            )
            self._pending.extendleft(reversed(batch))
            raise

    async def _persist_loop(self) -> None:
        while True:
            await self._pending_wakeup.wait()
            self._pending_wakeup.clear()
            try:
                await self._store_pending()
            except (SQLAlchemyError, DBAPIError, OSError):
                await asyncio.sleep(1.0)
                self._pending_wakeup.set()

    async def wait_delivered(self) -> None:
        """Until every queued message is delivered and its results stored (tests, benches)."""
        await self._drain_all()
        await self._store_pending()


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("notifier task %s stopped by a bug", task.get_name(), exc_info=task.exception())


def notifier_of(app: FastAPI) -> Notifier | None:
    notifier: Notifier | None = getattr(app.state, "notifier", None)
    return notifier


@contextlib.asynccontextmanager
async def running_notifier(
    app: FastAPI,
    settings: ColdChainSettings,
    engine: AsyncEngine,
    *,
    clock: Callable[[], datetime] = db.utcnow,
    drain_timeout_s: float = 10.0,
) -> AsyncIterator[Notifier]:
    """Run the notifier for the app's lifespan (``app.state.notifier``); on the way out it delivers
    what is queued, bounded by ``drain_timeout_s``."""
    notifier = Notifier(settings, engine, clock)
    notifier.start()
    app.state.notifier = notifier
    try:
        yield notifier
    finally:
        await notifier.aclose(drain_timeout_s)


__all__ = ["Notifier", "Observer", "notifier_of", "running_notifier"]
