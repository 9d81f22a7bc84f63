"""Sequence streams of an edge: one per incarnation of its database (see :mod:`edge.incarnation`).

Sequence numbers are unique only within one edge database. A wiped database starts at 1 again
under a new ``incarnation``; taking its ``1, 2, 3...`` for duplicates of the old stream would
acknowledge events never stored, and the edge would delete them. So each incarnation is a stream
of its own, placed in ``events.seq`` after everything the edge stored before:

- ``events.seq = seq_offset + seq`` (the edge's own number). The new stream's offset is the
  highest ``events.seq`` of the edge when it starts, so ``(edge_id, seq)`` stays the unique key,
  projections and "latest wins" (time, seq) ordering keep working, and nothing is renumbered;
- ``edges`` holds the current stream (``incarnation``, ``seq_offset``) and ``acked_through`` in
  the edge's numbering; ``edge_incarnations`` remembers every stream, and batches of a replaced
  incarnation are refused (409): their numbers would land in the new stream's range;
- a new incarnation of an edge that had stored events raises an operator alert (kind
  ``edge_incarnation``, zone = the edge id) and is logged; the edge's very first stream does not;
- batches without ``incarnation`` (older edges) belong to the stream that has none, the edge's
  original one; once an edge sent an incarnation, such batches are refused (409);
- a resent sequence number whose stored content differs is refused (409, ``sequence_conflict``)
  instead of being counted as a duplicate: that is what a wiped edge without incarnations looks like.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.alerts import tables as alerts_db
from cloud.alerts.rules import ACTIVE
from cloud.coldchain.service import Notice
from cloud.core import db
from cloud.core.errors import CloudError
from cloud.ingest import tables as ingest_db
from shelfsense.contract import Batch, SequencedEvent

log = logging.getLogger(__name__)

ALERT_KIND = "edge_incarnation"


class StreamConflict(CloudError):
    """The batch does not fit the edge's sequence stream (HTTP 409); retrying will not help."""

    status_code = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Stream:
    """Where the batch's incarnation lives in ``events.seq``; ``acked`` in the edge's numbering."""

    incarnation: str | None
    offset: int
    acked: int
    notice: Notice | None = None  # the operator alert a new incarnation raised


def _short(incarnation: str | None) -> str:
    return incarnation[:12] if incarnation else "(none)"


async def stream_of(conn: AsyncConnection, batch: Batch, edge: Row[*tuple[Any, ...]], site_id: str) -> Stream:
    """The stream ``batch`` belongs to; opens a new one for a new incarnation. The edge row is locked."""
    current, wanted = edge.incarnation, batch.incarnation
    if wanted == current:
        return Stream(current, int(edge.seq_offset), int(edge.acked_through))
    if wanted is None:
        raise StreamConflict(
            "incarnation_required",
            f"edge {batch.edge_id} sends with incarnation {_short(current)}; a batch without one "
            "(an edge software older than incarnations, or a copy of its old database) is refused",
        )
    t = ingest_db.edge_incarnations
    known = await conn.scalar(
        select(t.c.started_at).where(t.c.edge_id == batch.edge_id, t.c.incarnation == wanted)
    )
    if known is not None:
        raise StreamConflict(
            "incarnation_superseded",
            f"incarnation {_short(wanted)} of edge {batch.edge_id} was replaced by {_short(current)}: "
            "this database is no longer the edge's (restored copy? see edge.incarnation.start_new)",
        )
    top = await conn.scalar(
        select(func.max(ingest_db.events.c.seq)).where(ingest_db.events.c.edge_id == batch.edge_id)
    )
    offset = int(top or 0)
    now = db.utcnow()
    await conn.execute(
        update(ingest_db.edges)
        .where(ingest_db.edges.c.edge_id == batch.edge_id)
        .values(incarnation=wanted, seq_offset=offset, acked_through=0, incarnation_started_at=now)
    )
    await conn.execute(
        t.insert().values(edge_id=batch.edge_id, incarnation=wanted, seq_offset=offset, started_at=now)
    )
    notice = None
    if offset:  # the edge had a stream before: its database was replaced
        log.warning(
            "edge %s: NEW INCARNATION %s replaces %s (its database was wiped or replaced); "
            "its events start a new sequence stream after cloud seq %d",
            batch.edge_id,
            wanted,
            current or "the original stream",
            offset,
        )
        notice = await _raise_alert(conn, site_id, batch.edge_id, wanted, current, offset, now)
    return Stream(wanted, offset, 0, notice)


async def _raise_alert(
    conn: AsyncConnection,
    site_id: str,
    edge_id: str,
    incarnation: str,
    previous: str | None,
    offset: int,
    now: datetime,
) -> Notice:
    """Open (or refresh, after another wipe) the edge's ``edge_incarnation`` operator alert."""
    a = alerts_db.alerts
    text = (
        f"edge {edge_id} database replaced: incarnation {_short(incarnation)} follows "
        f"{_short(previous)}; events the old database had not sent are lost"
    )[:160]
    active = await conn.scalar(
        select(a.c.id).where(
            a.c.site_id == site_id, a.c.zone == edge_id, a.c.rule == ALERT_KIND, a.c.status.in_(ACTIVE)
        )
    )
    values: dict[str, Any] = {"last_breach_at": now, "last_value": float(offset), "limit_source": text}
    if active is not None:
        await conn.execute(update(a).where(a.c.id == active).values(values))
        alert_id = int(active)
    else:
        row = {
            **values,
            "site_id": site_id,
            "zone": edge_id,
            "rule": ALERT_KIND,
            "kind": ALERT_KIND,
            "status": "open",
            "source": "cloud",
            "severity": "critical",
            "peak_value": float(offset),
            "first_breach_at": now,
            "notified_at": now,
        }
        alert_id = int(await conn.scalar(a.insert().values(row).returning(a.c.id)))
    stored = (await conn.execute(select(a).where(a.c.id == alert_id))).mappings().one()
    return Notice(dict(stored), "raised")


async def note_disk_full(conn: AsyncConnection, batch: Batch, edge: Row[*tuple[Any, ...]]) -> None:
    """Keep the edge's reported disk state (edge.diskfull) in its health; log the transitions."""
    if batch.disk_full == bool(edge.disk_full):
        return
    if batch.disk_full:
        log.warning("edge %s reports its DISK FULL: it holds events in memory, MQTT waits", batch.edge_id)
    else:
        log.warning("edge %s reports disk space back", batch.edge_id)
    await conn.execute(
        update(ingest_db.edges)
        .where(ingest_db.edges.c.edge_id == batch.edge_id)
        .values(disk_full=batch.disk_full, disk_full_since=db.utcnow() if batch.disk_full else None)
    )


def shifted(batch: Batch, offset: int) -> Batch:
    """``batch`` with its sequence numbers in ``events.seq`` terms (the same batch at offset 0)."""
    if not offset:
        return batch
    events = [SequencedEvent.model_construct(seq=e.seq + offset, event=e.event) for e in batch.events]
    return batch.model_copy(update={"events": events})


def check_resent(
    batch: Batch,
    offset: int,
    stored: dict[int, str],
    items: Sequence[SequencedEvent],
    payloads: Sequence[str],
) -> None:
    """Refuse the batch if an already stored sequence number comes with other content."""
    for item, payload in zip(items, payloads, strict=True):
        before = stored.get(item.seq)
        if before is None or before == payload or json.loads(before) == json.loads(payload):
            continue
        raise StreamConflict(
            "sequence_conflict",
            f"edge {batch.edge_id} incarnation {_short(batch.incarnation)}: seq {item.seq - offset} "
            "was already stored with different content; a sequence number is never reused "
            "(was the edge database wiped or restored? it needs a new incarnation)",
        )


__all__ = ["ALERT_KIND", "Stream", "StreamConflict", "check_resent", "note_disk_full", "shifted", "stream_of"]
