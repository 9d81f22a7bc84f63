"""The last rejected inbound payloads (poison messages), kept in the edge database for diagnosis.

A payload the edge cannot decode (malformed JSON, a 400-digit temperature, a 2 MB packet) is
counted, dropped and acknowledged, so the broker stops redelivering it. What it was is kept here:
the newest :data:`KEEP_LAST` rejects, each with its topic, the reason and at most
:data:`KEEP_BYTES` of its raw bytes (``size`` is the original length). ``shelfsense edge status``
shows them. Rows are written in the same transaction as the batch they arrived with (see
:meth:`edge.outbox.Outbox.append`), so a reject is recorded exactly when its batch is committed
and its acknowledgement is sent.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Final

import aiosqlite

__all__ = ["KEEP_BYTES", "KEEP_LAST", "SCHEMA", "Rejected", "Rejects", "recent_rejects"]

KEEP_LAST: Final = 50
KEEP_BYTES: Final = 4096
SHOWN_BYTES: Final = 200  # of each payload in the status report (the database has KEEP_BYTES)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rejected_payloads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    source TEXT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Rejected:
    """One dropped payload: where it came from, why it was dropped, its first bytes and size."""

    topic: str
    reason: str
    payload: bytes
    size: int
    source: str = "mqtt"
    at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, topic: str, reason: str, payload: bytes, size: int | None = None) -> Rejected:
        return cls(topic, reason[:500], bytes(payload[:KEEP_BYTES]), len(payload) if size is None else size)


@dataclass(slots=True)
class Rejects:
    """Rejects to store with a batch: a ledger write for :meth:`edge.outbox.Outbox.append`."""

    items: list[Rejected] = field(default_factory=list)

    async def write(self, db: aiosqlite.Connection) -> None:
        if not self.items:
            return
        await db.executemany(
            "INSERT INTO rejected_payloads (at, source, topic, reason, size, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(r.at, r.source, r.topic, r.reason, r.size, r.payload) for r in self.items],
        )
        # Bounded: only the newest KEEP_LAST stay (ids only grow: AUTOINCREMENT never reuses one).
        await db.execute(
            "DELETE FROM rejected_payloads WHERE id <= (SELECT MAX(id) FROM rejected_payloads) - ?",
            (KEEP_LAST,),
        )


def recent_rejects(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The stored rejects, newest first, for the status report (payloads shown escaped, shortened)."""
    try:
        rows = conn.execute(
            "SELECT at, source, topic, reason, size, payload FROM rejected_payloads ORDER BY id DESC"
        ).fetchall()
    except sqlite3.OperationalError:  # a database written before this table existed
        return []
    return [
        {
            "at": at,
            "source": source,
            "topic": topic,
            "reason": reason,
            "size": size,
            "payload": bytes(payload[:SHOWN_BYTES]).decode("utf-8", "backslashreplace"),
        }
        for at, source, topic, reason, size, payload in rows
    ]
