"""The incarnation of an edge database: a random id created with it, sent in every batch.

Sequence numbers are only unique within one database: a wiped (or replaced) database starts again
at 1. The cloud keys its sequence streams by ``(edge, incarnation)``, so the new database's events
open a new stream there instead of being taken for duplicates of the old ``1, 2, 3...`` and
dropped (after which the edge, seeing them acknowledged, would have deleted them).

Rules:

- a database created by this code gets a fresh id (``uuid4().hex``) in the same transaction that
  creates the table, so two processes opening a new file at once agree on one id;
- a database created before incarnations existed (it already has sequence numbers when the table
  appears) keeps the empty id: its batches carry no ``incarnation`` and continue the original
  stream in the cloud, exactly as before the upgrade;
- restoring a database from a backup must start a new incarnation (:func:`start_new`): the
  restored copy would reuse sequence numbers the cloud already holds with other content, which the
  cloud refuses (409) for the old incarnation. Every incarnation's stream starts at 1.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import aiosqlite

from edge.errors import OutboxError

SCHEMA = """
CREATE TABLE IF NOT EXISTS incarnation (
    id TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

LEGACY = ""  # the id of a database from before incarnations: batches carry none


async def ensure(db: aiosqlite.Connection) -> str | None:
    """The database's incarnation id, created on first use; None for a pre-incarnation database."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute(SCHEMA)
        async with db.execute("SELECT id FROM incarnation LIMIT 1") as cursor:
            row = await cursor.fetchone()
        found = str(row[0]) if row is not None else None
        if found is None:
            async with db.execute("SELECT value FROM meta WHERE key = 'last_seq'") as cursor:
                seq_row = await cursor.fetchone()
            used = bool(seq_row and seq_row[0])
            new_id = LEGACY if used else uuid.uuid4().hex
            await db.execute("INSERT INTO incarnation (id, created_at) VALUES (?, ?)", (new_id, time.time()))
            found = new_id
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    return found or None


def start_new(db_path: Path | str) -> str:
    """Give a (restored) edge database a new incarnation; the edge must not be running.

    Every stream starts at 1, so the events still in the outbox are renumbered from 1 (in order)
    and go to the cloud again in the new stream. Those the original database had delivered before
    it was lost are then stored twice: a restore cannot know which they were.
    """
    new_id = uuid.uuid4().hex
    if not Path(db_path).is_file():
        raise OutboxError(f"no edge database at {db_path}")
    try:
        conn = sqlite3.connect(db_path, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(SCHEMA)
            shift = conn.execute("SELECT value FROM meta WHERE key = 'acked_through'").fetchone()[0]
            # Acked rows are deleted: every row left is above ``shift``, so no new key collides.
            conn.execute("UPDATE outbox SET seq = seq - ?", (shift,))
            conn.execute("UPDATE meta SET value = value - ? WHERE key = 'last_seq'", (shift,))
            conn.execute("UPDATE meta SET value = 0 WHERE key = 'acked_through'")
            conn.execute("DELETE FROM delivered")  # delivered to the old stream, not to the new one
            conn.execute("DELETE FROM incarnation")
            conn.execute("INSERT INTO incarnation (id, created_at) VALUES (?, ?)", (new_id, time.time()))
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise OutboxError(f"edge database {db_path}: cannot start a new incarnation: {exc}") from exc
    return new_id
