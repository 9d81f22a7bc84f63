"""Database schema and engine (SQLAlchemy 2 Core, async) for SQLite and PostgreSQL.

The schema is owned by Alembic migrations (``cloud/migrations``, run by :mod:`cloud.core.migrate`);
``metadata`` here must always equal the schema at head (a test compares them on both engines).

Timestamps are stored in UTC. :class:`UtcDateTime` normalises every bound value to UTC (naive
values are taken as UTC, as the contract's producers emit UTC) and returns aware datetimes, so
SQLite (which has no time-zone type and compares ISO strings) and PostgreSQL behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    event,
    false,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

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

sites = Table(
    "sites",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

edges = Table(
    "edges",
    metadata,
    Column("edge_id", ID, primary_key=True),
    Column("site_id", ID, ForeignKey("sites.site_id"), nullable=False),
    Column("acked_through", BigInteger, nullable=False, default=0),
    Column("events_received", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("batches", BigInteger, nullable=False, default=0),
    # Events stored for audit but not applied: their time was outside the plausibility window
    # (revision 0010, cloud.ingest.plausibility).
    Column("events_implausible", BigInteger, nullable=False, default=0, server_default="0"),
    Column("last_seen", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    # The current sequence stream (revision 0009): the edge database's incarnation (None: an edge
    # that sends none), and where its sequence numbers start in ``events.seq`` (see ingest).
    Column("incarnation", String(64)),
    Column("seq_offset", BigInteger, nullable=False, default=0, server_default="0"),
    Column("incarnation_started_at", UtcDateTime),
    # The edge reports a full disk in its batches (edge.diskfull); since when, as the cloud saw it.
    Column("disk_full", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("disk_full_since", UtcDateTime),
)

# Every incarnation an edge has sent in, with its offset; only the edge's current one is accepted.
edge_incarnations = Table(
    "edge_incarnations",
    metadata,
    Column("edge_id", ID, ForeignKey("edges.edge_id"), primary_key=True),
    Column("incarnation", String(64), primary_key=True),
    Column("seq_offset", BigInteger, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
)

# ``sites``: the sites a user may see and act on, comma-separated; NULL means every site (what users
# made before migration 0011 got). A disabled user (``disabled_at`` set) is refused everywhere.
users = Table(
    "users",
    metadata,
    Column("name", ID, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sites", Text),
    Column("disabled_at", UtcDateTime),
)

# Only the SHA-256 of a token is stored; ``kind`` says whether it belongs to an edge or a user.
tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("edge_id", ID, ForeignKey("edges.edge_id")),
    Column("user_name", ID, ForeignKey("users.name")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

# The de-duplication log: one row per (edge, seq) ever accepted.
events = Table(
    "events",
    metadata,
    Column("edge_id", ID, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("implausible", Boolean, nullable=False, default=False, server_default=false()),  # rev. 0010
)


def _event_columns() -> list[Column[Any]]:
    """Columns every projection row shares: where it came from."""
    return [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("site_id", ID, nullable=False),
        Column("edge_id", ID, nullable=False),
        Column("seq", BigInteger, nullable=False),
    ]


tag_observations = Table(
    "tag_observations",
    metadata,
    *_event_columns(),
    Column("epc", EPC, nullable=False),
    Column("reader", ID, nullable=False),
    Column("antenna", Integer, nullable=False),
    Column("rssi", Float),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("location", ID),
    Index("ix_tag_observations_epc", "epc", "last_seen"),
    Index("ix_tag_observations_site", "site_id"),
)

portal_passages = Table(
    "portal_passages",
    metadata,
    *_event_columns(),
    Column("epc", EPC, nullable=False),
    Column("portal", ID, nullable=False),
    Column("direction", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("inside_location", ID),
    Column("outside_location", ID),
    # Direction unknown (revision 0012): why, and the stocktake run that resolved it (NULL = open:
    # flagged for the stocktake; no stock was moved).
    Column("unknown_reason", String(16)),
    Column("resolved_run_id", BigInteger),
    Index("ix_portal_passages_epc", "epc", "at"),
    Index("ix_portal_passages_site", "site_id"),
    Index(
        "ix_portal_passages_unresolved",
        "site_id",
        "at",
        sqlite_where=text("direction = 'unknown' AND resolved_run_id IS NULL"),
        postgresql_where=text("direction = 'unknown' AND resolved_run_id IS NULL"),
    ),
)

stock_movements = Table(
    "stock_movements",
    metadata,
    *_event_columns(),
    Column("epc", EPC, nullable=False),
    Column("from_location", ID),
    Column("to_location", ID),
    Column("reason", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_stock_movements_epc", "epc", "at"),
    # Which items moved at a site since a late reading's time (lot read model, migration 0014).
    Index("ix_stock_movements_site_at", "site_id", "at"),
    Index("ix_stock_movements_at", "at", "id"),  # the ledger's keyset order (GET /movements)
)

# Current stock: the latest movement per (site, epc). ``present`` false = left the site.
stock_items = Table(
    "stock_items",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("epc", EPC, primary_key=True),
    Column("location", ID),
    Column("present", Boolean, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_stock_items_location", "site_id", "present", "location"),
)

sensor_readings = Table(
    "sensor_readings",
    metadata,
    *_event_columns(),
    Column("sensor_id", ID, nullable=False),
    Column("quantity", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("zone", ID),
    Column("flags", String(64), nullable=False, default=""),
    Index("ix_sensor_readings_sensor_time", "sensor_id", "time"),
    # One reading per (site, sensor, quantity, device time), whatever edge sequence carried it
    # (migration 0016); ingest inserts-or-ignores and counts what it left out.
    Index("ux_sensor_readings_key", "site_id", "sensor_id", "quantity", "time", unique=True),
    # Alert windows, lot history, EPCIS: readings of a zone over time. Partial: readings without a
    # zone are never asked for by zone, so they skip this index (migration 0008).
    Index(
        "ix_sensor_readings_zone_time",
        "zone",
        "time",
        sqlite_where=text("zone IS NOT NULL"),
        postgresql_where=text("zone IS NOT NULL"),
    ),
)

# Latest value per (site, sensor, quantity).
sensors = Table(
    "sensors",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("sensor_id", ID, primary_key=True),
    Column("quantity", String(16), primary_key=True),
    Column("edge_id", ID, nullable=False),
    Column("zone", ID),
    Column("unit", String(8), nullable=False),
    Column("last_value", Float, nullable=False),
    Column("last_time", UtcDateTime, nullable=False),
)

# Latest health per (edge, device).
device_health = Table(
    "device_health",
    metadata,
    Column("edge_id", ID, primary_key=True),
    Column("device_id", ID, primary_key=True),
    Column("connected", Boolean, nullable=False),
    Column("last_frame_at", UtcDateTime),
    Column("frames_ok", BigInteger, nullable=False),
    Column("frames_bad", BigInteger, nullable=False),
    Column("reconnects", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

local_alarms = Table(
    "local_alarms",
    metadata,
    *_event_columns(),
    Column("zone", ID, nullable=False),
    Column("sensor_id", ID, nullable=False),
    Column("rule", String(32), nullable=False),
    Column("state", String(8), nullable=False),
    Column("value", Float, nullable=False),
    Column("limit", Float, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

# Cold-chain alerts. At most one active (open or acknowledged) alert per (site, zone, rule):
# enforced by a partial unique index so two concurrent batches cannot both open one.
# Lifecycle columns (kind .. escalated_at) came with revision 0004 (cloud.coldchain).
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("zone", ID, nullable=False),
    Column("rule", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("source", String(8), nullable=False),
    Column("sensor_id", ID),
    Column("limit", Float),
    Column("peak_value", Float, nullable=False),
    Column("last_value", Float, nullable=False),
    Column("first_breach_at", UtcDateTime, nullable=False),
    Column("last_breach_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    Column("kind", String(16), nullable=False, default="single_event", server_default="single_event"),
    Column("severity", String(8), nullable=False, default="warning", server_default="warning"),
    Column("limit_source", Text),  # lists SKUs: unbounded (revision 0010)
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_by", ID),
    Column("ack_comment", Text),
    Column("resolved_by", ID),
    Column("resolve_reason", Text),
    Column("escalation_level", Integer, nullable=False, default=0, server_default="0"),
    Column("notified_at", UtcDateTime),
    Index(
        "ux_alerts_one_open",
        "site_id",
        "zone",
        "rule",
        unique=True,
        sqlite_where=text("status IN ('open', 'acknowledged')"),
        postgresql_where=text("status IN ('open', 'acknowledged')"),
    ),
    Index("ix_alerts_status", "status", "site_id"),
)


# --- master data (revision 0002) ------------------------------------------------------------------
# Sites already exist (edges belong to one); locations form a tree per site. Event rows keep plain
# location strings without foreign keys: an edge may report a location before it is registered.

LOCATION_KINDS = ("site_area", "zone", "shelf", "cold_room", "dock")

locations = Table(
    "locations",
    metadata,
    Column("site_id", ID, ForeignKey("sites.site_id"), primary_key=True),
    Column("location_id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("parent_id", ID),
    Column("name", String(200), nullable=False, default=""),
    # Readers cover it: only such locations take part in continuous stocktake reconciliation.
    Column("rfid_coverage", Boolean, nullable=False, default=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # GS1 Global Location Number (revision 0012): 13 digits, the length of its company prefix and
    # the SGLN extension; EPCIS exports it as urn:epc:id:sgln:<prefix>.<reference>.<extension>.
    Column("gln", String(13)),
    Column("gcp_length", SmallInteger),
    Column("gln_extension", String(20)),
    ForeignKeyConstraint(
        ["site_id", "parent_id"], ["locations.site_id", "locations.location_id"], name="fk_locations_parent"
    ),
    Index("ix_locations_parent", "site_id", "parent_id"),
    Index("ux_locations_sgln", "gln", "gln_extension", unique=True),
)

# EPCIS events captured from partners (revision 0012): one row per event, keyed by its eventID (or
# a hash of the event when it has none) so a partner may capture the same document twice. ``id``
# is the ``seq`` of the rows it projected (edge_id ``epcis``).
epcis_events = Table(
    "epcis_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_key", String(255), nullable=False, unique=True),
    Column("site_id", ID, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("captured_at", UtcDateTime, nullable=False),
    Column("captured_by", String(128), nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("gtin", String(14), unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("shelf_life_days", Integer),
    Column("storage_temp_min_c", Float),
    Column("storage_temp_max_c", Float),
    Column("updated_at", UtcDateTime, nullable=False),
    # Shelf-life model (revision 0005, cloud.lots.service); NULL = defaults, see lots.product_model.
    Column("shelf_life_model", String(16)),
    Column("activation_energy_kj", Float),
    Column("q10", Float),
    Column("reference_temp_c", Float),
)

lots = Table(
    "lots",
    metadata,
    Column("sku", ID, ForeignKey("products.sku"), primary_key=True),
    Column("lot_code", ID, primary_key=True),
    Column("expiry", Date),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_lots_expiry", "expiry"),
)

items = Table(
    "items",
    metadata,
    Column("epc", EPC, primary_key=True),
    Column("sku", ID, ForeignKey("products.sku"), nullable=False),
    Column("lot_code", ID),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["sku", "lot_code"], ["lots.sku", "lots.lot_code"], name="fk_items_lot"),
    Index("ix_items_sku_lot", "sku", "lot_code"),
)


# --- continuous stocktake (revision 0003) ---------------------------------------------------------

stocktake_runs = Table(
    "stocktake_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("runner", String(200), nullable=False),
    Column("missing_after_windows", Integer, nullable=False),
    Column("missing", Integer, nullable=False, default=0),
    Column("misplaced", Integer, nullable=False, default=0),
    Column("unexpected", Integer, nullable=False, default=0),
    Column("unknown", Integer, nullable=False, default=0),
    Column("new_discrepancies", Integer, nullable=False, default=0),
    Column("resolved_discrepancies", Integer, nullable=False, default=0),
    Index("ix_stocktake_runs_site", "site_id", "id"),
)

stocktake_locations = Table(
    "stocktake_locations",
    metadata,
    Column("run_id", BigInteger, ForeignKey("stocktake_runs.id"), primary_key=True),
    Column("location", ID, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("book_count", Integer, nullable=False),
    Column("seen_count", Integer, nullable=False),
    Column("observed_count", Integer, nullable=False),
    Column("read_rate", Float),
    Column("baseline_read_rate", Float),
    Column("confidence", Float),
    Index("ix_stocktake_locations_location", "location", "run_id"),
)

# One row per discrepancy episode: opened by the run that first sees it, kept (last_run_id) while
# later runs still see it, closed as resolved / accepted / dismissed.
stocktake_discrepancies = Table(
    "stocktake_discrepancies",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("epc", EPC, nullable=False),
    Column("location", ID, nullable=False),
    Column("book_location", ID),
    Column("status", String(16), nullable=False),
    Column("unseen_windows", Integer, nullable=False, default=0),
    Column("first_run_id", BigInteger, ForeignKey("stocktake_runs.id"), nullable=False),
    Column("last_run_id", BigInteger, ForeignKey("stocktake_runs.id"), nullable=False),
    Column("resolved_run_id", BigInteger, ForeignKey("stocktake_runs.id")),
    Column("decided_by", ID),
    Column("decided_at", UtcDateTime),
    Index(
        "ux_stocktake_discrepancies_live",
        "site_id",
        "kind",
        "epc",
        "location",
        unique=True,
        sqlite_where=text("status IN ('open', 'dismissed')"),
        postgresql_where=text("status IN ('open', 'dismissed')"),
    ),
    Index("ix_stocktake_discrepancies_status", "site_id", "status", "location"),
)

# Unseen covered windows per book item (only nonzero counters are stored).
stocktake_streaks = Table(
    "stocktake_streaks",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("epc", EPC, primary_key=True),
    Column("unseen_windows", Integer, nullable=False),
)

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


def create_engine(db_url: str) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...``."""
    backend = make_url(db_url).get_backend_name()
    if backend == "sqlite":
        _ensure_sqlite_dir(db_url)
        engine = create_async_engine(db_url)
        _sqlite_hooks(engine)
        return engine
    if backend == "postgresql":
        return create_async_engine(db_url, pool_pre_ping=True)
    raise ValueError(f"cloud.db_url: unsupported database backend {backend!r} (use sqlite or postgresql)")


async def create_all(engine: AsyncEngine) -> None:
    """Bring the schema to the latest migration (idempotent; kept under its historical name)."""
    from cloud.core.migrate import ensure_schema  # migrate imports this module

    await ensure_schema(engine)


# One asyncio lock per SQLite engine: writers of this process queue on it in FIFO order before
# BEGIN IMMEDIATE. Without it they all wait in SQLite's busy handler, which sleeps and retries
# (up to 100 ms per nap) with no fairness, so under load some requests starve for seconds.
_sqlite_write_locks: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction (SQLite: BEGIN IMMEDIATE after the in-process FIFO lock)."""
    lock: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()
    if engine.dialect.name == "sqlite":
        lock = _sqlite_write_locks.setdefault(engine, asyncio.Lock())
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
    "LOCATION_KINDS",
    "UtcDateTime",
    "alerts",
    "bulk_insert",
    "create_all",
    "create_engine",
    "device_health",
    "edge_incarnations",
    "edges",
    "epcis_events",
    "events",
    "items",
    "jobs",
    "local_alarms",
    "locations",
    "lots",
    "metadata",
    "portal_passages",
    "products",
    "sensor_readings",
    "sensors",
    "sites",
    "sqlite_insert_sql",
    "stock_items",
    "stock_movements",
    "stocktake_discrepancies",
    "stocktake_locations",
    "stocktake_runs",
    "stocktake_streaks",
    "tag_observations",
    "tokens",
    "users",
    "utc",
    "utcnow",
    "write_connection",
    "write_transaction",
]


# Feature packages define their tables on the same ``metadata``; importing them here (after
# ``metadata`` exists) makes it complete for migrations, the schema test and every query.
from cloud.coldchain import evidence_tables as _evidence_tables  # noqa: E402, F401
from cloud.coldchain import tables as _coldchain_tables  # noqa: E402, F401
from cloud.replenish import tables as _replenish_tables  # noqa: E402, F401
from cloud.web import tables as _web_tables  # noqa: E402, F401
