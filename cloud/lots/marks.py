"""Marks for the lot-evidence read model: what changed, written in the changing transaction.

Cheap by design (one multi-row INSERT, no reads of history): the catch-up job in
:mod:`cloud.lots.readmodel` resolves marks to lots and recomputes them. A mark is due at
its event's own time, so a future-dated reading or movement is folded in once the clock gets there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.coldchain.evidence_tables import lot_evidence_marks
from cloud.core import db
from cloud.masterdata import tables as masterdata_db
from shelfsense.contract import SensorReading, SequencedEvent, StockMovement

# Marks are due at once; one whose events lie after the catch-up's clock stays and comes due again
# at the next of them (a future-dated reading or movement), see lot_readmodel.resolve.
DUE_AT_ONCE = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ("sku", "lot_code", "epc", "site_id", "zone", "since", "until", "due_at")
CHUNK = 5000


def _row(**values: Any) -> dict[str, Any]:
    return {name: values.get(name) for name in _COLUMNS}


def event_marks(site_id: str, items: Sequence[SequencedEvent]) -> list[dict[str, Any]]:
    """One mark per zone with new temperature readings (their time span) and per moved item."""
    zones: dict[str, tuple[datetime, datetime]] = {}
    moved: dict[str, datetime] = {}
    for item in items:
        ev = item.event
        if isinstance(ev, SensorReading):
            if ev.zone is None or ev.quantity != "temperature":
                continue
            t = db.utc(ev.time)
            lo, hi = zones.get(ev.zone, (t, t))
            zones[ev.zone] = (min(lo, t), max(hi, t))
        elif isinstance(ev, StockMovement):
            at = db.utc(ev.at)
            moved[ev.epc] = max(moved.get(ev.epc, at), at)
    rows = [
        _row(site_id=site_id, zone=zone, since=lo, until=hi, due_at=DUE_AT_ONCE)
        for zone, (lo, hi) in zones.items()
    ]
    rows += [
        _row(epc=epc, site_id=site_id, since=at, until=at, due_at=DUE_AT_ONCE) for epc, at in moved.items()
    ]
    return rows


async def insert_marks(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await conn.execute(lot_evidence_marks.insert(), list(rows))


async def mark_events(conn: AsyncConnection, site_id: str, items: Sequence[SequencedEvent]) -> None:
    """In the ingest transaction, after the batch's new events are projected."""
    await insert_marks(conn, event_marks(site_id, items))


def lot_marks(keys: Iterable[tuple[str, str | None]], due_at: datetime) -> list[dict[str, Any]]:
    """Marks for lots ``(sku, lot_code)``; a ``None`` lot code marks every lot of the product."""
    return [_row(sku=sku, lot_code=code, due_at=due_at) for sku, code in sorted(set(keys), key=str)]


async def mark_master(conn: AsyncConnection, kind: str, keys: Sequence[Mapping[str, Any]]) -> None:
    """Before a master-data upsert or delete of ``keys`` (rows or key dicts) of ``kind``: the lots
    whose evidence it may change (an item's lot before and after, a product's every lot)."""
    affected: set[tuple[str, str | None]] = set()
    if kind == "products":
        affected = {(k["sku"], None) for k in keys}
    elif kind == "lots":
        affected = {(k["sku"], k["lot_code"]) for k in keys}
    elif kind == "items":
        affected = {(k["sku"], k["lot_code"]) for k in keys if k.get("lot_code") and k.get("sku")}
        epcs = [k["epc"] for k in keys]
        i = masterdata_db.items
        for start in range(0, len(epcs), CHUNK):
            query = select(i.c.sku, i.c.lot_code).where(
                i.c.epc.in_(epcs[start : start + CHUNK]), i.c.lot_code.is_not(None)
            )
            affected.update((sku, code) for sku, code in await conn.execute(query.distinct()))
    await insert_marks(conn, lot_marks(affected, DUE_AT_ONCE))


__all__ = ["DUE_AT_ONCE", "event_marks", "insert_marks", "lot_marks", "mark_events", "mark_master"]
