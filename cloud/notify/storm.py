"""Alert-storm control between "an alert transition happened" and "a channel sends".

Per (channel, site, zone): at most ``max_messages_per_zone_per_hour`` messages in each hour window
(digests included); what is over the limit, or falls in a quiet-hours / maintenance window of
``[[cloud.coldchain.quiet]]``, is held and summarised in one digest ("3 more excursions in
cold-room since 10:02") as soon as the channel may send again: with the next message of that zone,
or from the periodic tick (:meth:`StormGate.flush`). The alerts themselves are always recorded;
only messages are held.

The counters live in the ``alert_storm`` table (one row per channel, site and zone, updated in one
write transaction per transition), so limits hold across restarts and replicas. Every decision
takes ``now`` from the caller: tests drive it with their own clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.coldchain.tables import alert_storm
from cloud.core import db
from cloud.notify import AlertMessage
from cloud.notify.catalogue import word
from shelfsense.config import ColdChainSettings, QuietWindow

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
_MAX_QUEUED = 10_000


def _daily_holds(window: QuietWindow, now: datetime) -> bool:
    assert window.daily is not None
    first, last = (time.fromisoformat(part) for part in window.daily.split("-"))
    local = now.astimezone(ZoneInfo(window.timezone)).time()
    return first <= local < last if first < last else (local >= first or local < last)


def quiet_now(windows: Sequence[QuietWindow], site: str, zone: str, now: datetime) -> bool:
    """True when a quiet-hours or maintenance window holds messages of this zone at ``now``."""
    for window in windows:
        if window.site_id is not None and window.site_id != site:
            continue
        if window.zones and zone not in window.zones:
            continue
        if window.daily is not None and _daily_holds(window, now):
            return True
        if window.start is not None and window.end is not None and window.start <= now < window.end:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Counter:
    """One ``alert_storm`` row."""

    window_start: datetime
    sent: int = 0
    held: int = 0
    held_raised: int = 0
    held_since: datetime | None = None
    held_quiet: bool = False


@dataclass(frozen=True, slots=True)
class Digest:
    """What one digest message says: ``excursions`` new alerts among ``messages`` held."""

    channel: str
    site_id: str
    zone: str
    excursions: int
    messages: int
    since: datetime
    quiet: bool


def _rolled(c: Counter, now: datetime) -> Counter:
    return replace(c, window_start=now, sent=0) if now - c.window_start >= WINDOW else c


def _hold(c: Counter, now: datetime, raised: bool, quiet: bool) -> Counter:
    return replace(
        c,
        held=c.held + 1,
        held_raised=c.held_raised + int(raised),
        held_since=c.held_since or now,
        held_quiet=c.held_quiet or quiet,
    )


def _release(c: Counter, key: tuple[str, str, str]) -> tuple[Counter, Digest]:
    assert c.held_since is not None
    digest = Digest(*key, c.held_raised, c.held, c.held_since, c.held_quiet)
    return Counter(c.window_start, c.sent + 1), digest


def step(
    c: Counter | None, key: tuple[str, str, str], now: datetime, limit: int | None, quiet: bool, raised: bool
) -> tuple[Counter, bool, Digest | None]:
    """One transition on one channel: the new counter, whether to send it, a digest due first."""
    c = _rolled(c or Counter(now), now)
    if quiet:
        return _hold(c, now, raised, quiet=True), False, None
    digest = None
    if c.held and (limit is None or c.sent < limit):
        c, digest = _release(c, key)
    if limit is None or c.sent < limit:
        return replace(c, sent=c.sent + 1), True, digest
    return _hold(c, now, raised, quiet=False), False, digest


def flushed(
    c: Counter, key: tuple[str, str, str], now: datetime, limit: int | None, quiet: bool
) -> tuple[Counter, Digest | None]:
    """The periodic check: a digest of what is held once quiet hours end or the hour is over."""
    if not c.held or quiet:
        return c, None
    c = _rolled(c, now)
    if limit is not None and c.sent >= limit:
        return c, None
    return _release(c, key)


async def _load(conn: AsyncConnection, key: tuple[str, str, str]) -> Counter | None:
    t = alert_storm.c
    query = select(alert_storm).where(t.channel == key[0], t.site_id == key[1], t.zone == key[2])
    row = (await conn.execute(query.with_for_update())).mappings().first()
    if row is None:
        return None
    return Counter(
        db.utc(row["window_start"]),
        row["sent"],
        row["held"],
        row["held_raised"],
        db.utc(row["held_since"]) if row["held_since"] is not None else None,
        bool(row["held_quiet"]),
    )


async def _store(conn: AsyncConnection, key: tuple[str, str, str], c: Counter, new: bool) -> None:
    values = {
        "window_start": c.window_start,
        "sent": c.sent,
        "held": c.held,
        "held_raised": c.held_raised,
        "held_since": c.held_since,
        "held_quiet": c.held_quiet,
    }
    t = alert_storm.c
    if new:
        await conn.execute(alert_storm.insert().values(channel=key[0], site_id=key[1], zone=key[2], **values))
    else:
        where = (t.channel == key[0], t.site_id == key[1], t.zone == key[2])
        await conn.execute(alert_storm.update().where(*where).values(**values))


@dataclass(frozen=True, slots=True)
class Transition:
    """One alert transition waiting for the gate: its message per channel."""

    site_id: str
    zone: str
    raised: bool
    messages: Mapping[str, AlertMessage]  # channel name -> message in its language
    at: datetime  # when it happened (the gate may decide a little later)


Send = Callable[[str, AlertMessage], None]


class StormGate:
    """Decides, in order, which channel hears of each transition; sends digests when due."""

    def __init__(
        self, engine: AsyncEngine, settings: ColdChainSettings, send: Send, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.limits = {c.name: c.max_messages_per_zone_per_hour for c in settings.channels}
        self.languages = {c.name: c.language for c in settings.channels}
        self.quiet = list(settings.quiet)
        self.active = bool(self.quiet) or any(v is not None for v in self.limits.values())
        self._send, self.clock = send, clock
        self._queue: deque[Transition] = deque()
        self._wakeup = asyncio.Event()
        self._busy = False
        self.dropped = 0
        self.held = 0

    def submit(self, transition: Transition) -> None:
        if len(self._queue) >= _MAX_QUEUED:  # bounded: the oldest goes, as in the dispatchers
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(transition)
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                self._busy = True
                try:
                    await self._admit(self._queue.popleft())
                finally:
                    self._busy = False

    async def drain(self) -> None:
        while self._queue or self._busy:
            await asyncio.sleep(0.01)

    async def _admit(self, tr: Transition) -> None:
        now = tr.at
        quiet = quiet_now(self.quiet, tr.site_id, tr.zone, now)
        try:
            sends, digests = await self._decide(tr, now, quiet)
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            # Fail open: a storm of messages beats a silent cold room.
            log.warning("alert storm state unavailable (%s): sending unthrottled", type(exc).__name__)
            sends, digests = list(tr.messages), []
        for digest in digests:
            self._send(digest.channel, self.digest_message(digest, now))
        for name in sends:
            self._send(name, tr.messages[name])
        self.held += len(tr.messages) - len(sends)

    async def _decide(self, tr: Transition, now: datetime, quiet: bool) -> tuple[list[str], list[Digest]]:
        for attempt in (1, 2):  # a replica may insert the same new row first: then update it
            sends: list[str] = []
            digests: list[Digest] = []
            try:
                async with db.write_transaction(self.engine) as conn:
                    for name in tr.messages:
                        key = (name, tr.site_id, tr.zone)
                        found = await _load(conn, key)
                        counter, send, digest = step(found, key, now, self.limits.get(name), quiet, tr.raised)
                        await _store(conn, key, counter, found is None)
                        sends += [name] if send else []
                        digests += [digest] if digest else []
                return sends, digests
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def flush(self, now: datetime) -> list[Digest]:
        """Digests of everything held whose channel may send again (the periodic tick)."""
        if not self.active:
            return []
        out: list[Digest] = []
        async with db.write_transaction(self.engine) as conn:
            rows = (await conn.execute(select(alert_storm).where(alert_storm.c.held > 0))).mappings().all()
            for row in rows:
                key = (row["channel"], row["site_id"], row["zone"])
                found = await _load(conn, key)
                if found is None or key[0] not in self.limits:
                    continue
                quiet = quiet_now(self.quiet, key[1], key[2], now)
                counter, digest = flushed(found, key, now, self.limits[key[0]], quiet)
                if digest is not None:
                    await _store(conn, key, counter, new=False)
                    out.append(digest)
        for digest in out:
            self._send(digest.channel, self.digest_message(digest, now))
        return out

    def digest_message(self, d: Digest, now: datetime) -> AlertMessage:
        lang = self.languages.get(d.channel, "en")
        why = word("digest.why.quiet" if d.quiet else "digest.why.rate", lang)
        since = d.since.strftime("%Y-%m-%d %H:%M UTC")
        text = word(
            "digest.one" if d.excursions == 1 else "digest",
            lang,
            excursions=d.excursions,
            zone=d.zone,
            since=since,
            messages=d.messages,
            why=why,
        )
        return AlertMessage(
            alert_id="digest",
            site_id=d.site_id,
            kind="digest",
            state="digest",
            title=word("digest.title", lang, zone=d.zone, site=d.site_id),
            text=text,
            at=now,
            zone=d.zone,
            value=float(d.excursions),
            language=lang,
        )


__all__ = ["Counter", "Digest", "StormGate", "Transition", "flushed", "quiet_now", "step"]
