"""The edge's durable SQLite store: the outbox of events to sync, and the local ledger.

One database file (WAL, ``synchronous=FULL`` by default) holds:

- ``outbox``: events not yet acknowledged by the cloud, keyed by their per-edge sequence number;
- ``meta``: ``last_seq`` (the last sequence number ever assigned) and ``acked_through``. Keeping
  ``last_seq`` here, rather than deriving it from ``MAX(outbox.seq)``, is what guarantees that
  sequence numbers never repeat and have no holes across restarts, even after every row was acked
  and deleted;
- the local ledger: ``on_hand`` (which EPC is where), ``sensor_latest`` (latest value per sensor and
  quantity), ``alarms`` (open local alarms) and ``counters`` (tag_reads, frames_ok, ...).

Design choice: :meth:`Outbox.append` applies the ledger effects of the events itself
(:class:`StockMovement` -> ``on_hand``, :class:`SensorReading` -> ``sensor_latest``,
:class:`LocalAlarm` -> ``alarms``) and the optional counter deltas, all in the one transaction that
assigns the sequence numbers and inserts the outbox rows. The ledger therefore can never disagree
with what was queued for the cloud, and each call is one commit (one fsync): callers batch events
(see :class:`OutboxWriter`, which groups concurrent callers into one commit).

Every ``sqlite3.Error`` is translated into :class:`edge.errors.OutboxError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import aiosqlite
from pydantic import ValidationError

from edge import downsample, incarnation, receipts, rejects
from edge.errors import DiskFullError, OutboxError
from shelfsense.contract import (
    Event,
    LocalAlarm,
    SensorReading,
    SequencedEvent,
    StockMovement,
    event_json,
    parse_event,
)

log = logging.getLogger(__name__)

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
T = TypeVar("T")


class LedgerWrite(Protocol):
    """More rows to write in the transaction of a batch (e.g. :class:`edge.receipts.Receipts`)."""

    async def write(self, db: aiosqlite.Connection) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0), ('acked_through', 0);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS on_hand (
    epc TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sensor_latest (
    sensor_id TEXT NOT NULL,
    quantity TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    time TEXT NOT NULL,
    time_unix REAL NOT NULL,
    zone TEXT,
    PRIMARY KEY (sensor_id, quantity)
);
CREATE TABLE IF NOT EXISTS alarms (
    zone TEXT NOT NULL,
    sensor_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    value REAL NOT NULL,
    limit_value REAL NOT NULL,
    raised_at TEXT NOT NULL,
    PRIMARY KEY (zone, sensor_id, rule)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Rows already stored by the cloud out of order (alarms sent ahead of a backlog): regular batches
-- skip them; the contiguous ack deletes them once the gap before them is filled.
CREATE TABLE IF NOT EXISTS delivered (
    seq INTEGER PRIMARY KEY
);
CREATE INDEX IF NOT EXISTS outbox_alarms ON outbox (seq) WHERE kind = 'local_alarm';
INSERT OR IGNORE INTO meta (key, value) VALUES ('degraded', 0);
"""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    oldest_pending_created_at: float | None  # unix time the oldest unacked event was stored
    last_seq: int
    acked_through: int
    degraded: bool = False


@dataclass(frozen=True, slots=True)
class OutboxBudget:
    """How much unacknowledged data the edge keeps in full detail (0 = no limit).

    Past any limit the outbox is *degraded*: telemetry is folded into per-``interval_s`` buckets
    (see :mod:`edge.downsample`) instead of being queued event by event. It leaves that state once
    every measure is below ``recover_ratio`` of its limit (hysteresis: no flapping at the edge).
    """

    max_events: int = 0
    max_bytes: int = 0
    max_age_s: float = 0.0
    interval_s: float = 300.0
    recover_ratio: float = 0.9
    check_every_s: float = 1.0


@dataclass(frozen=True, slots=True)
class OpenAlarm:
    zone: str
    sensor_id: str
    rule: str
    value: float
    limit: float
    raised_at: str


SQLITE_FULL = 13  # "database or disk is full" (primary result code)


@contextlib.contextmanager
def _translated(what: str) -> Any:
    try:
        yield
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == SQLITE_FULL:
            raise DiskFullError(f"edge database: {what} failed: disk full ({exc})") from exc
        raise OutboxError(f"edge database: {what} failed: {exc}") from exc


class Outbox:
    """Durable outbox + ledger: writes on one aiosqlite connection (serialised), reads on another.

    Reads (what to sync next, status) run on their own connection: in WAL mode a reader sees the
    last committed state without waiting for a write transaction in progress. On one shared
    connection the sync loop queued behind every group commit of a busy MQTT stream and fed the
    cloud a third of what it could take.
    """

    def __init__(
        self, path: Path | str, synchronous: Synchronous = "FULL", budget: OutboxBudget | None = None
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.budget = budget or OutboxBudget()
        self.degraded = False
        self.incarnation: str | None = None  # see edge.incarnation; None: a pre-incarnation database
        self.degraded_reasons: list[str] = []
        self._budget_checked_at = -math.inf
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # The write connection is shared by the writer, the sync loop's acks and the ledger. Without
        # this lock an await inside one transaction lets another task BEGIN on the same connection.
        # Reads never see uncommitted rows: they are on the other connection.
        self._lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    async def open(self) -> None:
        if self.path.is_dir():  # checked here: aiosqlite leaks a callback when connect() itself fails
            raise OutboxError(f"edge database path {self.path} is a directory")
        with _translated("open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so one call == one transaction.
            db = await aiosqlite.connect(self.path, isolation_level=None)
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute(f"PRAGMA synchronous={self.synchronous}")
                await db.execute("PRAGMA busy_timeout=5000")
                await db.executescript(SCHEMA)
                await db.executescript(downsample.SCHEMA)
                await db.executescript(receipts.SCHEMA + rejects.SCHEMA)
                self.incarnation = await incarnation.ensure(db)
                async with db.execute("SELECT value FROM meta WHERE key = 'degraded'") as cursor:
                    row = await cursor.fetchone()
                self.degraded = bool(row and row[0])
                reader = await aiosqlite.connect(self.path, isolation_level=None)
            except sqlite3.Error:
                await db.close()
                raise
        self._db, self._reader = db, reader

    async def close(self) -> None:
        for db in (self._reader, self._db):
            if db is not None:
                with _translated("close"):
                    await db.close()
        self._db = self._reader = None

    async def __aenter__(self) -> Outbox:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise OutboxError("edge database is not open")
        return self._db

    @contextlib.asynccontextmanager
    async def _reading(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        if self._reader is None:
            raise OutboxError("edge database is not open")
        async with self._read_lock:
            with _translated(what):
                yield self._reader

    @contextlib.asynccontextmanager
    async def _transaction(self, what: str) -> AsyncIterator[aiosqlite.Connection]:
        db = self.db
        async with self._lock:
            with _translated(what):
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")

    async def append(
        self,
        events: Sequence[Event],
        counters: Mapping[str, int] | None = None,
        extras: Sequence[LedgerWrite] = (),
    ) -> list[int | None]:
        """Store ``events`` with the next sequence numbers and apply their ledger effects.

        Everything (sequence assignment, outbox rows, ledger, counter deltas, ``extras``) is one transaction:
        after a crash either all of it is there or none of it. Returns the assigned numbers.

        While the outbox is over its budget, telemetry is folded into downsampling buckets instead
        (durably, in this same transaction) and gets no sequence number: its entry in the returned
        list (aligned with ``events``) is ``None``.
        """
        deltas = dict(counters or {})
        async with self._transaction("append") as db:
            if await self._check_budget(db):
                keep = [not downsample.is_telemetry(e) for e in events]
                telemetry = [e for e, k in zip(events, keep, strict=True) if not k]
                folded = await downsample.fold(db, telemetry, self.budget.interval_s, time.time())
                if folded:
                    deltas["telemetry_downsampled"] = deltas.get("telemetry_downsampled", 0) + folded
                queued = iter(await _queue(db, [e for e, k in zip(events, keep, strict=True) if k]))
                seqs: list[int | None] = [next(queued) if k else None for k in keep]
            else:
                seqs = list(await _queue(db, events))
            await _apply_ledger(db, events)
            await _add_counters(db, deltas)
            for extra in extras:
                await extra.write(db)
        return seqs

    async def flush_buckets(self, *, force: bool = False) -> int:
        """Queue the downsampled events of buckets open for a whole interval (all if ``force``)."""
        cutoff = math.inf if force else time.time() - self.budget.interval_s
        async with self._transaction("flush downsampling buckets") as db:
            events = await downsample.take_closed(db, cutoff)
            await _queue(db, events)
        return len(events)

    async def _check_budget(self, db: aiosqlite.Connection) -> bool:
        """Re-evaluate the budget at most every ``check_every_s``; log and persist transitions."""
        budget = self.budget
        now = time.monotonic()
        if now - self._budget_checked_at < budget.check_every_s:
            return self.degraded
        self._budget_checked_at = now
        ratio = budget.recover_ratio if self.degraded else 1.0
        reasons = await _over_budget(db, budget, ratio)
        if bool(reasons) != self.degraded:
            self.degraded = bool(reasons)
            await db.execute("UPDATE meta SET value = ? WHERE key = 'degraded'", (int(self.degraded),))
            if self.degraded:
                log.error(
                    "outbox over budget (%s): DEGRADED - sensor telemetry, tag observations and device "
                    "health are now downsampled to min/max/last per %.0f s; stock events and alarms are kept",
                    "; ".join(reasons),
                    budget.interval_s,
                )
            else:
                log.warning("outbox back within budget: telemetry is queued in full detail again")
        self.degraded_reasons = reasons
        return self.degraded

    async def set_meta(self, key: str, value: int) -> None:
        """Persist a small status value (e.g. the measured clock skew) for ``shelfsense edge status``."""
        async with self._transaction("set meta") as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    async def add_counters(self, counters: Mapping[str, int]) -> None:
        """Add counter deltas without any event (its own transaction)."""
        async with self._transaction("add counters") as db:
            await _add_counters(db, counters)

    async def pending(self, limit: int) -> list[SequencedEvent]:
        """Unacknowledged events, oldest first, at most ``limit``."""
        async with (
            self._reading("read pending") as db,
            db.execute(
                "SELECT seq, body FROM outbox WHERE seq NOT IN (SELECT seq FROM delivered) "
                "ORDER BY seq LIMIT ?",
                (limit,),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return _decode_rows(rows)

    async def pending_rows(self, limit: int, after_seq: int = 0) -> list[tuple[int, str]]:
        """Like :meth:`pending` but the stored JSON as is: the sync path sends it without re-parsing.

        Every body was produced by ``model_dump_json`` of a validated event in :meth:`append`;
        parsing and re-serialising 5,000 of them per batch was most of the edge's sync CPU.
        ``after_seq``: only rows after it (the next batch while earlier ones are in flight).
        """
        async with (
            self._reading("read pending") as db,
            db.execute(
                "SELECT seq, body FROM outbox WHERE seq > ? AND seq NOT IN (SELECT seq FROM delivered) "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ) as cursor,
        ):
            return [(int(seq), str(body)) for seq, body in await cursor.fetchall()]

    async def priority(self, after_seq: int, limit: int) -> list[SequencedEvent]:
        """Alarms queued behind ``after_seq`` that the cloud has not stored yet (they jump the queue)."""
        async with (
            self._reading("read priority events") as db,
            db.execute(
                "SELECT seq, body FROM outbox WHERE kind = 'local_alarm' AND seq > ? "
                "AND seq NOT IN (SELECT seq FROM delivered) ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return _decode_rows(rows)

    async def mark_delivered(self, seqs: Sequence[int]) -> None:
        """The cloud durably stored ``seqs`` (ahead of the contiguous ack): do not send them again."""
        async with self._transaction("mark delivered") as db:
            await db.executemany("INSERT OR IGNORE INTO delivered (seq) VALUES (?)", [(s,) for s in seqs])

    async def max_delivered(self) -> int:
        """The highest sequence the cloud stored out of order and that is not acknowledged yet (0 if none)."""
        async with (
            self._reading("read delivered") as db,
            db.execute("SELECT MAX(seq) FROM delivered") as cursor,
        ):
            row = await cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def ack(self, through_seq: int) -> int:
        """The cloud durably stored everything up to ``through_seq``: delete those rows.

        Returns the number of rows deleted. Acks never move ``acked_through`` backwards, and an
        ack beyond the last assigned sequence number is refused (the cloud cannot have it).
        """
        async with self._transaction("ack") as db:
            async with db.execute("SELECT value FROM meta WHERE key = 'last_seq'") as cursor:
                row = await cursor.fetchone()
            last = int(row[0]) if row else 0
            if through_seq > last:
                raise OutboxError(f"ack through {through_seq} beyond the last assigned sequence {last}")
            cursor = await db.execute("DELETE FROM outbox WHERE seq <= ?", (through_seq,))
            deleted = cursor.rowcount
            await db.execute("DELETE FROM delivered WHERE seq <= ?", (through_seq,))
            await db.execute(
                "UPDATE meta SET value = MAX(value, ?) WHERE key = 'acked_through'", (through_seq,)
            )
        return deleted

    async def progress(self) -> tuple[int, int]:
        """``(last_seq, acked_through)`` from ``meta`` only: cheap enough to poll, unlike
        :meth:`stats`, whose ``COUNT(*)`` walks the whole outbox (and holds the connection)."""
        async with (
            self._reading("progress") as db,
            db.execute("SELECT key, value FROM meta WHERE key IN ('last_seq', 'acked_through')") as cursor,
        ):
            meta = {str(k): int(v) for k, v in await cursor.fetchall()}
        return meta.get("last_seq", 0), meta.get("acked_through", 0)

    async def stats(self) -> OutboxStats:
        async with self._reading("stats") as db:
            async with db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox") as cursor:
                row = await cursor.fetchone()
            async with db.execute("SELECT key, value FROM meta") as cursor:
                meta = {str(k): int(v) for k, v in await cursor.fetchall()}
        count, oldest = (row[0], row[1]) if row else (0, None)
        return OutboxStats(
            pending=int(count),
            oldest_pending_created_at=oldest,
            last_seq=meta.get("last_seq", 0),
            acked_through=meta.get("acked_through", 0),
            degraded=self.degraded,
        )

    async def open_alarms(self) -> list[OpenAlarm]:
        """Alarms raised and not yet cleared (so a restarted evaluator does not raise them twice)."""
        async with (
            self._reading("read alarms") as db,
            db.execute("SELECT zone, sensor_id, rule, value, limit_value, raised_at FROM alarms") as cursor,
        ):
            rows = await cursor.fetchall()
        return [OpenAlarm(*row) for row in rows]

    async def read(self, what: str, query: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``query`` on the read connection (it sees the last committed state)."""
        async with self._reading(what) as db:
            return await query(db)

    async def free_bytes_inside(self) -> int:
        """Free pages inside the database file (reused before the file grows)."""
        async with self._reading("free pages") as db:
            values = []
            for pragma in ("freelist_count", "page_size"):
                async with db.execute(f"PRAGMA {pragma}") as cursor:
                    row = await cursor.fetchone()
                values.append(int(row[0]) if row else 0)
        return values[0] * values[1]

    async def counters(self) -> dict[str, int]:
        async with (
            self._reading("read counters") as db,
            db.execute("SELECT name, value FROM counters") as cursor,
        ):
            return {str(k): int(v) for k, v in await cursor.fetchall()}

    async def on_hand(self) -> dict[str, str]:
        """EPC -> location of every item the edge believes is on site."""
        async with (
            self._reading("read on_hand") as db,
            db.execute("SELECT epc, location FROM on_hand") as cursor,
        ):
            return {str(k): str(v) for k, v in await cursor.fetchall()}


def _decode_rows(rows: Iterable[Any]) -> list[SequencedEvent]:
    result = []
    for seq, body in rows:
        try:
            result.append(SequencedEvent(seq=seq, event=parse_event(json.loads(body))))
        except (ValueError, ValidationError) as exc:
            # Only this code writes the rows; a row it cannot read back is a real corruption.
            raise OutboxError(f"outbox row {seq} is corrupt: {exc}") from exc
    return result


async def _queue(db: aiosqlite.Connection, events: Sequence[Event]) -> list[int]:
    """Give ``events`` the next sequence numbers and insert them (inside the caller's transaction)."""
    if not events:
        return []
    async with db.execute("SELECT value FROM meta WHERE key = 'last_seq'") as cursor:
        row = await cursor.fetchone()
    last = int(row[0]) if row else 0
    seqs = list(range(last + 1, last + 1 + len(events)))
    now = time.time()
    await db.executemany(
        "INSERT INTO outbox (seq, kind, body, created_at) VALUES (?, ?, ?, ?)",
        [(seq, ev.kind, event_json(ev), now) for seq, ev in zip(seqs, events, strict=True)],
    )
    await db.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (seqs[-1],))
    return seqs


async def _over_budget(db: aiosqlite.Connection, budget: OutboxBudget, ratio: float) -> list[str]:
    """Which limits the outbox exceeds (each scaled by ``ratio``); all measures are O(1) or O(log n)."""
    reasons = []
    async with db.execute("SELECT key, value FROM meta WHERE key IN ('last_seq', 'acked_through')") as cursor:
        meta = {str(k): int(v) for k, v in await cursor.fetchall()}
    pending = meta.get("last_seq", 0) - meta.get("acked_through", 0)  # rows are deleted only by acks
    if budget.max_events and pending >= budget.max_events * ratio:
        reasons.append(f"{pending} events pending, budget {budget.max_events}")
    if budget.max_bytes:
        pages = {}
        for pragma in ("page_count", "freelist_count", "page_size"):
            async with db.execute(f"PRAGMA {pragma}") as cursor:
                row = await cursor.fetchone()
            pages[pragma] = int(row[0]) if row else 0
        # Free pages are reused before the file grows, so they do not count against the budget.
        used = (pages["page_count"] - pages["freelist_count"]) * pages["page_size"]
        if used >= budget.max_bytes * ratio:
            reasons.append(f"{used / 1e6:.0f} MB in use, budget {budget.max_bytes / 1e6:.0f} MB")
    if budget.max_age_s:
        async with db.execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1") as cursor:
            row = await cursor.fetchone()
        age = time.time() - float(row[0]) if row else 0.0
        if age >= budget.max_age_s * ratio:
            reasons.append(
                f"oldest pending event {age / 3600:.1f} h old, budget {budget.max_age_s / 3600:.1f} h"
            )
    return reasons


_SENSOR_LATEST_UPSERT = (
    "INSERT INTO sensor_latest (sensor_id, quantity, value, unit, time, time_unix, zone) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sensor_id, quantity) DO UPDATE SET "
    "value = excluded.value, unit = excluded.unit, time = excluded.time, "
    "time_unix = excluded.time_unix, zone = excluded.zone "
    "WHERE excluded.time_unix >= sensor_latest.time_unix"
)


async def _apply_ledger(db: aiosqlite.Connection, events: Sequence[Event]) -> None:
    """Ledger effects of ``events``; readings go in one statement (they dominate at high rates)."""
    # Only the newest reading per (sensor, quantity) of the batch can end up in sensor_latest, so
    # reduce here: 500 MQTT readings of 50 sensors are 50 upserts, not 500. Ties go to the later
    # event, as the statement's ``>=`` guard would decide.
    newest: dict[tuple[str, str], tuple[float, SensorReading]] = {}
    for e in events:
        if isinstance(e, SensorReading):
            key, at = (e.sensor_id, e.quantity), e.time.timestamp()
            current = newest.get(key)
            if current is None or at >= current[0]:
                newest[key] = (at, e)
    if newest:
        # Only newer readings replace the latest value (MQTT redeliveries may arrive late).
        rows = [
            (e.sensor_id, e.quantity, e.value, e.unit, e.time.isoformat(), at, e.zone)
            for at, e in newest.values()
        ]
        await db.executemany(_SENSOR_LATEST_UPSERT, rows)
    for event in events:
        if isinstance(event, StockMovement | LocalAlarm):
            await _apply_stock_or_alarm(db, event)


async def _apply_stock_or_alarm(db: aiosqlite.Connection, event: StockMovement | LocalAlarm) -> None:
    if isinstance(event, StockMovement):
        if event.to_location is None:
            await db.execute("DELETE FROM on_hand WHERE epc = ?", (event.epc,))
        else:
            await db.execute(
                "INSERT INTO on_hand (epc, location, since) VALUES (?, ?, ?) "
                "ON CONFLICT(epc) DO UPDATE SET location = excluded.location, since = excluded.since",
                (event.epc, event.to_location, event.at.isoformat()),
            )
    elif event.state == "raised":
        await db.execute(
            "INSERT OR REPLACE INTO alarms (zone, sensor_id, rule, value, limit_value, raised_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event.zone, event.sensor_id, event.rule, event.value, event.limit, event.at.isoformat()),
        )
    else:
        await db.execute(
            "DELETE FROM alarms WHERE zone = ? AND sensor_id = ? AND rule = ?",
            (event.zone, event.sensor_id, event.rule),
        )


async def _add_counters(db: aiosqlite.Connection, counters: Mapping[str, int]) -> None:
    rows = [(name, delta) for name, delta in counters.items() if delta]
    if rows:
        await db.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            rows,
        )


@dataclass(slots=True)
class _Request:
    events: Sequence[Event]
    counters: Mapping[str, int]
    future: asyncio.Future[list[int | None]]
    extras: Sequence[LedgerWrite] = ()


class OutboxWriter:
    """Group commit for concurrent producers (device tasks, MQTT consumer, health emitter).

    Producers ``await submit(...)``, which returns only once their events are committed (so the
    MQTT consumer can PUBACK after it). The writer task takes every request waiting in the queue
    (up to ``max_group_events``) and stores them in ONE :meth:`Outbox.append` call: one fsync for
    many producers. The queue is bounded (``max_waiting`` requests); when it is full ``submit``
    waits, i.e. producers are slowed down to the speed of the disk (backpressure, never dropping).
    """

    def __init__(self, outbox: Outbox, *, max_waiting: int = 1000, max_group_events: int = 5000) -> None:
        self.outbox = outbox
        self.max_group_events = max_group_events
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue(maxsize=max_waiting)
        self.commits = 0
        self._stopped = False

    async def submit(
        self,
        events: Sequence[Event],
        counters: Mapping[str, int] | None = None,
        extras: Sequence[LedgerWrite] = (),
    ) -> list[int | None]:
        if self._stopped:
            raise OutboxError("outbox writer stopped")
        future: asyncio.Future[list[int | None]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(events, dict(counters or {}), future, extras))
        return await future

    async def stop(self) -> None:
        """Ask :meth:`run` to finish after committing everything submitted before this call."""
        await self._queue.put(None)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._stopped = True
            # Whatever ended the writer, nobody may wait forever for a commit that will not come.
            while not self._queue.empty():
                request = self._queue.get_nowait()
                if request is not None and not request.future.done():
                    request.future.set_exception(OutboxError("outbox writer stopped"))

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            group = [first]
            size = len(first.events)
            while size < self.max_group_events and not self._queue.empty():
                request = self._queue.get_nowait()
                if request is None:
                    stopping = True
                    break
                group.append(request)
                size += len(request.events)
            await self._commit(group)

    async def _commit(self, group: list[_Request]) -> None:
        events = [event for request in group for event in request.events]
        counters: dict[str, int] = {}
        for request in group:
            for name, delta in request.counters.items():
                counters[name] = counters.get(name, 0) + delta
        extras = [extra for request in group for extra in request.extras]
        try:
            seqs = await self.outbox.append(events, counters, extras)
        except OutboxError as exc:
            # Every producer of the group learns that its events were NOT stored and decides.
            for request in group:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        self.commits += 1
        start = 0
        for request in group:
            end = start + len(request.events)
            if not request.future.done():  # the producer may have been cancelled meanwhile
                request.future.set_result(seqs[start:end])
            start = end
