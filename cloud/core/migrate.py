"""Schema migrations (Alembic), safe to run from several replicas starting at the same time.

:func:`upgrade_to_head` opens one write transaction and runs every pending Alembic revision in it:

- on PostgreSQL it first takes ``pg_advisory_xact_lock(MIGRATION_LOCK_KEY)``: a second replica
  blocks there until the first commits, then finds the schema at head and does nothing. DDL is
  transactional on PostgreSQL, so a failed upgrade leaves the old schema intact;
- on SQLite the transaction starts with ``BEGIN IMMEDIATE`` (see :mod:`cloud.core.db`), which
  serialises writers across processes the same way.

Databases created before migrations existed (``metadata.create_all``) have the tables but no
``alembic_version``; they are stamped at the initial revision and then upgraded normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic narrates every step (and its plugins, at import) at INFO on every start; our own line
# says what changed. Quieted only when nobody configured the "alembic" logger, and before Alembic
# is imported: hence the imports inside the functions below.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
INITIAL_REVISION = "0001"
# Arbitrary but fixed 64-bit key; every replica must use the same one ("SHSE" "MIGR").
MIGRATION_LOCK_KEY = 0x5348_5345_4D49_4752

# Engines already brought to head by this process: admin helpers call ensure_schema() on every
# operation, and loading the revision scripts each time would be wasted work.
_upgraded: weakref.WeakSet[AsyncEngine] = weakref.WeakSet()


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts found"
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> tuple[str | None, str]:
    from alembic import command

    before = current_revision(connection)
    config = alembic_config(connection)
    if before is None and inspect(connection).has_table("edges"):
        log.info("database predates migrations: stamping it at revision %s", INITIAL_REVISION)
        command.stamp(config, INITIAL_REVISION)
    command.upgrade(config, "head")
    return before, current_revision(connection) or ""


# Engines of one process on the same SQLite file (replicas started together in one process, as in
# the tests) queue here; across processes SQLite's own lock and busy_timeout serialise them.
_sqlite_migration_locks: dict[str, asyncio.Lock] = {}


def _sqlite_file_lock(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[Any]:
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _sqlite_migration_locks.setdefault(str(engine.url.database), asyncio.Lock())


async def upgrade_to_head(engine: AsyncEngine) -> str:
    """Apply every pending migration (serialised across processes); returns the head revision."""
    async with _sqlite_file_lock(engine), db.write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        before, after = await conn.run_sync(_upgrade)
    if before != after:
        log.info("database schema migrated from %s to %s", before or "empty", after)
    _upgraded.add(engine)
    return after


async def ensure_schema(engine: AsyncEngine) -> None:
    """:func:`upgrade_to_head` once per engine per process."""
    if engine not in _upgraded:
        await upgrade_to_head(engine)


def migrate(db_url: str) -> str:
    """Synchronous entry point for ``shelfsense cloud migrate``."""

    async def main() -> str:
        engine = db.create_engine(db_url)
        try:
            return await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


__all__ = [
    "MIGRATION_LOCK_KEY",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "migrate",
    "upgrade_to_head",
]
