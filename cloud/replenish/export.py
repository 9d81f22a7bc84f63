"""Exporting approved proposals.

A fully approved proposal is exported: POSTed to the
signed webhook by the job, or fetched as CSV/JSON; on export a purchase becomes an open purchase
order (``SS-<id>``), so its quantity keeps counting as on order and is never proposed again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.notify.base import AlertMessage, DeliveryResult
from cloud.replenish import tables as rt
from cloud.replenish.messages import proposal_message
from cloud.replenish.run import public_row

EXPORT_CLAIM_TTL = timedelta(minutes=5)


MAX_EXPORT_BATCH = 100


EXPORT_COLUMNS = (
    "id",
    "po_number",
    "kind",
    "status",
    "site_id",
    "sku",
    "location_id",
    "source_location",
    "supplier_id",
    "group_ref",
    "quantity",
    "unit_cost",
    "amount",
    "order_amount",
    "order_by",
    "expected_arrival",
    "need_by",
    "late",
    "decided_at",
    "exported_at",
)


def po_number(proposal_id: int) -> str:
    return f"SS-{proposal_id}"


def export_record(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The ERP-facing shape of a proposal (CSV columns, JSON object, webhook payload)."""
    public = public_row(row)
    record = {c: public.get(c) for c in EXPORT_COLUMNS}
    record["po_number"] = po_number(int(row["id"])) if row["kind"] == "purchase" else None
    record["reasoning"] = public.get("reasoning")
    return record


async def export_rows(
    conn: AsyncConnection, status: str = "approved", site: str | None = None
) -> list[dict[str, Any]]:
    p = rt.proposals
    query = select(p).order_by(p.c.id)
    if status == "all":
        query = query.where(p.c.status.in_(("approved", "exported")))
    else:
        query = query.where(p.c.status == status)
    if site is not None:
        query = query.where(p.c.site_id == site)
    return [export_record(r) for r in (await conn.execute(query)).mappings()]


async def mark_exported(conn: AsyncConnection, proposal_ids: Sequence[int]) -> list[int]:
    """Approved -> exported; a purchase becomes an open purchase order in the same transaction."""
    p = rt.proposals
    rows = (
        (
            await conn.execute(
                select(p).where(p.c.id.in_(list(proposal_ids)), p.c.status == "approved").with_for_update()
            )
        )
        .mappings()
        .all()
    )
    now = db.utcnow()
    for row in rows:
        if row["kind"] == "purchase":
            await _purchase_order_from(conn, row, now)
    done = [int(r["id"]) for r in rows]
    if done:
        await conn.execute(
            update(p)
            .where(p.c.id.in_(done))
            .values(status="exported", exported_at=now, export_claimed_at=None, export_error=None)
        )
    return done


async def _purchase_order_from(conn: AsyncConnection, row: Mapping[Any, Any], now: datetime) -> None:
    po, lines = rt.purchase_orders, rt.purchase_order_lines
    number = po_number(int(row["id"]))
    if await conn.scalar(select(po.c.id).where(po.c.po_number == number)) is not None:
        return  # the ERP already sent it back
    po_id = (
        await conn.execute(
            po.insert()
            .values(
                po_number=number,
                supplier_id=row["supplier_id"],
                site_id=row["site_id"],
                status="open",
                ordered_at=row["order_by"],
                expected_date=row["expected_arrival"] or row["order_by"],
                source="proposal",
                updated_at=now,
            )
            .returning(po.c.id)
        )
    ).scalar_one()
    await conn.execute(
        lines.insert().values(
            po_id=po_id,
            line_no=1,
            sku=row["sku"],
            location_id=row["location_id"],
            quantity=row["quantity"],
            received_quantity=0.0,
            unit_cost=row["unit_cost"],
        )
    )


class ExportSender(Protocol):
    async def send(self, alert: AlertMessage) -> DeliveryResult: ...


async def _claim_exports(engine: AsyncEngine, now: datetime) -> list[dict[str, Any]]:
    p = rt.proposals
    async with db.write_transaction(engine) as conn:
        rows = (
            (
                await conn.execute(
                    select(p)
                    .where(
                        p.c.status == "approved",
                        or_(p.c.export_claimed_at.is_(None), p.c.export_claimed_at < now - EXPORT_CLAIM_TTL),
                    )
                    .order_by(p.c.id)
                    .limit(MAX_EXPORT_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            .mappings()
            .all()
        )
        if rows:
            await conn.execute(
                update(p)
                .where(p.c.id.in_([r["id"] for r in rows]))
                .values(export_claimed_at=now, export_attempts=p.c.export_attempts + 1)
            )
    return [export_record(r) for r in rows]


async def export_approved(engine: AsyncEngine, sender: ExportSender, language: str = "en") -> tuple[int, int]:
    """Deliver every approved, unclaimed proposal through ``sender``; returns (exported, failed)."""
    claimed = await _claim_exports(engine, db.utcnow())
    ok: list[int] = []
    failed: dict[int, str] = {}
    for record in claimed:
        result = await sender.send(proposal_message(record, language))
        if result.ok:
            ok.append(int(record["id"]))
        else:
            failed[int(record["id"])] = (result.error or "failed")[:500]
    p = rt.proposals
    async with db.write_transaction(engine) as conn:
        await mark_exported(conn, ok)
        for ident, error in failed.items():
            # Released at once: the next poll retries (the channel itself already backed off).
            await conn.execute(
                update(p).where(p.c.id == ident).values(export_claimed_at=None, export_error=error)
            )
    return len(ok), len(failed)


__all__ = ["export_approved", "export_rows", "mark_exported"]
