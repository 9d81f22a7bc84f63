"""Database engine and types (SQLAlchemy 2 Core, async) for SQLite and PostgreSQL.

Every feature defines its tables in its own ``tables.py`` on the one ``metadata`` here (the
periodic-job table ``jobs`` lives here with the job registry's engine side); :mod:`cloud.tables`
imports them all. The schema is owned by Alembic migrations (``cloud/migrations``, run by
:mod:`cloud.core.migrate`); the complete metadata must always equal the schema at head (a test
compares them on both engines).

Timestamps are stored in UTC. :class:`UtcDateTime` normalises every bound value to UTC (naive
values are taken as UTC, as the contract's producers emit UTC) and returns aware datetimes, so
SQLite (which has no time-zone type and compares ISO strings) and PostgreSQL behave alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Table,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from cloud.core.locks import CrossLoopLock

# Execution option asking the SQLite "begin" hook for BEGIN IMMEDIATE (writers), see _sqlite_hooks.
WRITE_TRANSACTION = {"shelfsense_write": True}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both engines (SQLite stores naive UTC ISO strings)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc(value: datetime) -> datetime:
    """Normalise a datetime to aware UTC (naive means UTC)."""
    tz = value.tzinfo
    if tz is UTC:  # already normalised: skip astimezone's offset lookup (hot on the ingest path)
        return value
    return value.replace(tzinfo=UTC) if tz is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


ID = String(128)
EPC = String(124)

metadata = MetaData()


def event_columns() -> list[Column[Any]]:
    """Columns every projection row shares: where it came from."""
    return [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("site_id", ID, nullable=False),
        Column("edge_id", ID, nullable=False),
        Column("seq", BigInteger, nullable=False),
    ]


# --- master data (revision 0002) ------------------------------------------------------------------
# Sites already exist (edges belong to one); locations form a tree per site. Event rows keep plain
# location strings without foreign keys: an edge may report a location before it is registered.


# --- continuous stocktake (revision 0003) ---------------------------------------------------------

# Periodic background jobs shared by all replicas: whoever claims the row (FOR UPDATE SKIP LOCKED)
# runs the tick and moves next_run_at forward; lease_until keeps others out until the run finishes.
jobs = Table(
    "jobs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_run_at", UtcDateTime, nullable=False),
    Column("last_started_at", UtcDateTime),
    Column("last_finished_at", UtcDateTime),
    Column("last_runner", String(200)),
    Column("runs", BigInteger, nullable=False, default=0),
    Column("lease_until", UtcDateTime),
)


def _ensure_sqlite_dir(db_url: str) -> None:
    url = make_url(db_url)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_hooks(engine: AsyncEngine) -> None:
    """WAL + busy_timeout, and BEGIN IMMEDIATE for write transactions.

    pysqlite's own transaction handling begins lazily and would upgrade a read lock to a write
    lock mid-transaction (SQLITE_BUSY without waiting); taking the write lock at BEGIN makes
    concurrent ingests queue on busy_timeout instead. Reads keep a plain deferred BEGIN.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in (
            # busy_timeout first: switching a new database to WAL needs a lock, and without the
            # timeout a replica connecting while another migrates fails at once ("database is locked").
            # Generous: a replica starting while another migrates waits for the whole upgrade.
            "PRAGMA busy_timeout=30000",
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",  # an ack promises the batch is durable
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("shelfsense_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(db_url: str, **options: Any) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...``; ``options``
    go to ``create_async_engine`` (pool sizes: cloud.core.pools)."""
    backend = make_url(db_url).get_backend_name()
    if backend == "sqlite":
        _ensure_sqlite_dir(db_url)
        engine = create_async_engine(db_url, **options)
        _sqlite_hooks(engine)
        return engine
    if backend == "postgresql":
        return create_async_engine(db_url, pool_pre_ping=True, **options)
    raise ValueError(f"cloud.db_url: unsupported database backend {backend!r} (use sqlite or postgresql)")


async def create_all(engine: AsyncEngine) -> None:
    """Bring the schema to the latest migration (idempotent; kept under its historical name)."""
    from cloud.core.migrate import ensure_schema  # migrate imports this module

    await ensure_schema(engine)


# One lock per SQLite database: writers of this process queue on it in FIFO order before BEGIN
# IMMEDIATE (cloud.core.locks says why).
# Keyed by the database, not the engine: the read/jobs loop has engines of its own
# (cloud.api.read_gate) and its writers must queue in the same line.
_sqlite_write_locks: dict[str, CrossLoopLock] = {}


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction (SQLite: BEGIN IMMEDIATE after the in-process FIFO lock)."""
    lock: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
    if engine.dialect.name == "sqlite":
        lock = _sqlite_write_locks.setdefault(str(engine.url.database), CrossLoopLock())
    async with lock, engine.connect() as conn:
        conn = await write_connection(conn)
        async with conn.begin():
            yield conn


# pydantic parses "Z" (and "+00:00") into one shared zero-offset tzinfo of its own, not datetime.UTC.
# Only compared by identity: if a pydantic version stopped sharing it, the check would simply miss.
_PARSED_UTC = TypeAdapter(datetime).validate_python("2000-01-01T00:00:00Z").tzinfo


def _sqlite_datetime(value: datetime | None) -> str | None:
    """What :class:`UtcDateTime` + SQLAlchemy's SQLite DATETIME store: naive UTC, microseconds."""
    if value is None:
        return None
    # Called for every timestamp of every ingested event, hence the fast paths: no offset lookup
    # for naive, datetime.UTC and pydantic's parsed-UTC values, and %-formatting, which is about
    # twice as fast as isoformat() + slicing off "+00:00" and gives the same text.
    tz = value.tzinfo
    if tz is not None and tz is not UTC and tz is not _PARSED_UTC and value.utcoffset():
        value = value.astimezone(UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff": fixed width, so these strings sort like the instants they stand for.
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - measured faster than f-strings here
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def sqlite_insert_sql(table: Table, names: Sequence[str], ignore_conflicts: bool = False) -> str:
    """A plain ``INSERT`` for the driver's ``executemany`` (bypassing Core's per-row processing)."""
    columns = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" for _ in names)
    suffix = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    return f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks}){suffix}'


async def bulk_insert(
    conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """Insert many rows (all with the same keys) as fast as the engine allows.

    On SQLite the rows go straight to the driver's ``executemany`` with datetimes pre-formatted
    exactly as SQLAlchemy stores them (per-row Core parameter processing costs ~5x the SQLite
    work for a 1000-event batch). Elsewhere it is a plain Core executemany. Booleans are not
    converted, so only use it for tables whose columns are text, numbers and ``UtcDateTime``.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        stmt: Any = table.insert()
        if ignore_conflicts:
            from sqlalchemy.dialects import postgresql

            stmt = postgresql.insert(table).on_conflict_do_nothing()
        await conn.execute(stmt, rows)
        return
    names = tuple(rows[0])
    sql = sqlite_insert_sql(table, names, ignore_conflicts)
    time_columns = [i for i, n in enumerate(names) if isinstance(table.c[n].type, UtcDateTime)]
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = [row[n] for n in names]
        for i in time_columns:
            values[i] = _sqlite_datetime(values[i])
        params.append(tuple(values))
    await conn.exec_driver_sql(sql, params)


async def write_connection(conn: AsyncConnection) -> AsyncConnection:
    """The same connection, flagged so its next transaction takes the write lock (SQLite)."""
    return await conn.execution_options(**WRITE_TRANSACTION)


__all__ = [
    "UtcDateTime",
    "bulk_insert",
    "create_all",
    "create_engine",
    "jobs",
    "metadata",
    "sqlite_insert_sql",
    "utc",
    "utcnow",
    "write_connection",
    "write_transaction",
]
