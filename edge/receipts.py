"""Which inbound MQTT messages are already committed: a broker's QoS 1 redelivery is stored once.

The edge acknowledges a message only after its readings are committed. If the edge dies (or the
link or the broker drops) between the commit and the PUBACK reaching the broker, the broker sends
the message again, with the DUP flag and the same packet id, on the resumed session. Without
memory of what was committed, that redelivery became a second event (50 duplicates in 207k
readings over repeated SIGKILLs, 30 in 101k over broker restarts).

So every committed QoS 1 message leaves a *receipt*, in the same transaction as its events:
``packet id -> digest`` (CRC-32 of topic and payload). A redelivery (DUP set) whose packet id has a
receipt with the same digest was committed: it is acknowledged and not stored again. The table is
bounded by the packet id space (65,535 rows): a later message that reuses the id replaces the row.

Why the digest: the broker reuses a packet id once the message is acknowledged, so a receipt can
outlive its message. A new message reusing the id replaces the receipt when *it* is committed;
until then the digest tells a redelivery of the old message from the new one. The residual risk is
a redelivered message whose first delivery never reached the edge, with exactly the topic and
payload of the message that had its packet id one full id cycle (65,536 messages) earlier.

A publisher's own QoS 1 re-send (after a broker restart, the broker had stored the message but its
PUBACK was lost) is a *new* message with a new packet id: no receipt matches. When the reading
carries its device time it is still the same reading, one per (sensor, quantity, device time):
:class:`DeviceTimes` remembers the most recent such keys and the transport drops a repeat.

Why DUP: a message without it is a first delivery (MQTT 3.1.1 section 3.3.1.1, 5.0 section
3.3.1.1: the DUP flag MUST be set on a re-delivery), so it is never checked and costs nothing.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosqlite

__all__ = ["SCHEMA", "DeviceTimes", "Receipts", "digest"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_receipts (
    packet_id INTEGER PRIMARY KEY,
    digest INTEGER NOT NULL
);
"""


def digest(topic: str, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(topic.encode()))


@dataclass(slots=True)
class Receipts:
    """Receipts of one batch: a ledger write for :meth:`edge.outbox.Outbox.append`."""

    rows: list[tuple[int, int]] = field(default_factory=list)  # (packet id, digest)

    async def write(self, db: aiosqlite.Connection) -> None:
        if self.rows:
            await db.executemany(
                "INSERT OR REPLACE INTO mqtt_receipts (packet_id, digest) VALUES (?, ?)", self.rows
            )


async def committed(db: aiosqlite.Connection, packet_ids: Sequence[int]) -> dict[int, int]:
    """``packet id -> digest`` of the receipts among ``packet_ids``."""
    found: dict[int, int] = {}
    for start in range(0, len(packet_ids), 500):  # SQLite's bound-parameter limit
        chunk = list(packet_ids[start : start + 500])
        marks = ", ".join("?" * len(chunk))
        async with db.execute(
            f"SELECT packet_id, digest FROM mqtt_receipts WHERE packet_id IN ({marks})", chunk
        ) as cursor:
            found.update({int(p): int(d) for p, d in await cursor.fetchall()})
    return found


class DeviceTimes:
    """The last ``capacity`` (sensor, channel, quantity, device time) keys received, in memory.

    Bounded FIFO of 64-bit hashes (a collision drops one reading in ~2**64 pairs): 100k keys are
    about 10 MB. Publisher re-sends arrive seconds after the original, well inside the window; an
    edge restart forgets the window (receipts still cover the broker's own redeliveries).

    A key counts only once its batch is committed: keys are noted per batch (:meth:`first_time`,
    :meth:`end_batch`), :meth:`confirm` keeps them after the commit, and :meth:`forget_unconfirmed`
    (the connection ended) drops the others, or the broker's redelivery of a message whose commit
    never landed would look like a repeat and be lost.
    """

    __slots__ = ("_batch", "_keys", "_unconfirmed", "capacity")

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._keys: dict[int, None] = {}
        self._batch: list[int] = []
        self._unconfirmed: deque[tuple[int, list[int]]] = deque()

    def first_time(self, key: tuple[object, ...]) -> bool:
        """True (and noted for the current batch) the first time ``key`` is seen; False for a repeat."""
        digest = hash(key)
        if digest in self._keys:
            return False
        if len(self._keys) >= self.capacity:
            del self._keys[next(iter(self._keys))]
        self._keys[digest] = None
        self._batch.append(digest)
        return True

    def end_batch(self, number: int) -> None:
        if self._batch:
            self._unconfirmed.append((number, self._batch))
            self._batch = []

    def confirm(self, through: int) -> None:
        """Batches up to number ``through`` are committed: their keys stay."""
        while self._unconfirmed and self._unconfirmed[0][0] <= through:
            self._unconfirmed.popleft()

    def forget_unconfirmed(self) -> None:
        for _, keys in self._unconfirmed:
            for digest in keys:
                self._keys.pop(digest, None)
        for digest in self._batch:
            self._keys.pop(digest, None)
        self._unconfirmed.clear()
        self._batch = []
