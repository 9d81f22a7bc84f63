"""Online backup and restore of the cloud database (``shelfsense cloud backup|restore DIR``).

- SQLite: the online backup API (:meth:`sqlite3.Connection.backup`) copies a consistent snapshot
  while replicas keep writing (WAL readers are never blocked); the copy is ``DIR/cloud.db``.
- PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot, the server keeps running) to
  ``DIR/cloud.pgdump``; restore runs ``pg_restore --single-transaction`` into an empty database.

A restore only goes into an *empty* database (a fresh cloud): restoring over live data would mix two
histories. After the copy the schema is migrated to this version's head, so a backup taken by an
older release restores into a newer one. ``DIR/manifest.json`` records the engine, the schema
revision and the time of the backup.

The edge's outbox and ledger are one SQLite file; :func:`backup_sqlite_file` copies it online too
(``shelfsense edge backup DIR``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from cloud.core import db
from cloud.core.errors import CloudError
from cloud.core.migrate import current_revision, upgrade_to_head

MANIFEST = "manifest.json"
SQLITE_FILE = "cloud.db"
PG_DUMP_FILE = "cloud.pgdump"
# Pages copied per step of the SQLite backup: small steps let writers in between.
SQLITE_PAGES_PER_STEP = 4096


class BackupError(CloudError):
    """A backup or restore cannot be done; nothing was changed in the target."""


def backup_sqlite_file(source: Path, target: Path) -> None:
    """Copy a live SQLite database (WAL included) to ``target`` with the online backup API."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=SQLITE_PAGES_PER_STEP)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"SQLite backup of {source} failed: {exc}") from exc
    finally:
        src.close()
    os.replace(partial, target)  # a crash mid-copy never leaves a half file under the real name


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database).expanduser()


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password (that goes in PGPASSWORD, not in argv)."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client (Debian: postgresql-client)")
    return path


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip()[-500:]
        raise BackupError(f"{Path(argv[0]).name} failed ({result.returncode}): {detail}")


async def _revision(db_url: str) -> str | None:
    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(current_revision)
    finally:
        await engine.dispose()


async def _table_count(db_url: str) -> int:
    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                query = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            else:
                query = "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            return int(await conn.scalar(text(query)) or 0)
    finally:
        await engine.dispose()


async def _migrate(db_url: str) -> str:
    engine = db.create_engine(db_url)
    try:
        return await upgrade_to_head(engine)
    finally:
        await engine.dispose()


def backup(db_url: str, directory: Path) -> dict[str, Any]:
    """Write a consistent copy of the cloud database to ``directory``; returns the manifest."""
    url = make_url(db_url)
    backend = url.get_backend_name()
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / MANIFEST).exists():
        raise BackupError(f"{directory} already holds a backup; use a new directory per backup")
    if backend == "sqlite" and not _sqlite_path(url).is_file():
        raise BackupError(f"no database at {_sqlite_path(url)}")  # never create one just to copy it
    revision = asyncio.run(_revision(db_url))
    if revision is None:
        raise BackupError("the database has no ShelfSense schema: nothing to back up (wrong db_url?)")
    if backend == "sqlite":
        backup_sqlite_file(_sqlite_path(url), directory / SQLITE_FILE)
        files = [SQLITE_FILE]
    elif backend == "postgresql":
        conninfo, env = _libpq(url)
        dump = [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges"]
        _run([*dump, f"--file={directory / PG_DUMP_FILE}", f"--dbname={conninfo}"], env)
        files = [PG_DUMP_FILE]
    else:
        raise BackupError(f"unsupported database backend {backend!r}")
    manifest = {
        "engine": backend,
        "revision": revision,
        "files": files,
        "created_at": datetime.now(UTC).isoformat(),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise BackupError(f"{directory} holds no backup ({MANIFEST} missing)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(f"{directory / MANIFEST} is not a backup manifest: {exc}") from exc
    return manifest


def restore(db_url: str, directory: Path) -> dict[str, Any]:
    """Load the backup in ``directory`` into the empty database ``db_url``, then migrate to head."""
    manifest = read_manifest(directory)
    url = make_url(db_url)
    backend = url.get_backend_name()
    if manifest.get("engine") != backend:
        raise BackupError(
            f"the backup is of a {manifest.get('engine')} database; restore it into {manifest.get('engine')}"
        )
    if backend == "sqlite":
        target = _sqlite_path(url)
        if target.exists() and asyncio.run(_table_count(db_url)) > 0:
            raise BackupError(f"{target} is not empty: restore into a fresh database")
        for suffix in ("", "-wal", "-shm"):  # an empty database's files, never data
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        backup_sqlite_file(directory / SQLITE_FILE, target)
    else:
        if asyncio.run(_table_count(db_url)) > 0:
            raise BackupError("the target database is not empty: restore into a fresh database")
        conninfo, env = _libpq(url)
        restore_cmd = [_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
        restore_cmd += ["--single-transaction", f"--dbname={conninfo}", str(directory / PG_DUMP_FILE)]
        _run(restore_cmd, env)
    revision = asyncio.run(_migrate(db_url))
    return {"engine": backend, "restored_revision": manifest.get("revision"), "revision": revision}


__all__ = ["BackupError", "backup", "backup_sqlite_file", "read_manifest", "restore"]
