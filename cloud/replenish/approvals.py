"""Reading proposals and deciding on them.

Approval is a sequence of steps ``(level, role)``: the configured first step, the amount thresholds
of the order (a purchase draft's total) and the rules' ``require_approval`` actions. Each step is
filled by a different person (four eyes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.core.security import Role
from cloud.replenish import tables as rt
from cloud.replenish.options import ApprovalForbidden, Approver, ProposalConflict, ProposalNotFound
from cloud.replenish.run import public_row
from shelfsense.config import ReplenishSettings


async def get_proposal(conn: AsyncConnection, proposal_id: int) -> dict[str, Any]:
    p = rt.proposals
    row = (await conn.execute(select(p).where(p.c.id == proposal_id))).mappings().one_or_none()
    if row is None:
        raise ProposalNotFound(f"no proposal {proposal_id}")
    out = public_row(row)
    a = rt.approvals
    history = await conn.execute(select(a).where(a.c.proposal_id == proposal_id).order_by(a.c.id))
    out["approvals"] = [public_row(r) for r in history.mappings()]
    return out


def proposals_query(status: str | None, site: str | None) -> Any:
    p = rt.proposals
    query = select(p).order_by(p.c.id.desc())
    if status is not None and status != "all":
        query = query.where(p.c.status == status)
    if site is not None:
        query = query.where(p.c.site_id == site)
    return query


def can_fill(user: Approver, role: str, approvers: Mapping[str, Sequence[str]]) -> bool:
    """API roles by rank (an admin fills every step); other roles by the configured user lists."""
    if user.role >= Role.admin:
        return True
    if role in Role.__members__:
        return user.role >= Role[role]
    return user.name in approvers.get(role, ())


async def decide(
    engine: AsyncEngine,
    proposal_id: int,
    decision: str,
    user: Approver,
    comment: str,
    settings: ReplenishSettings,
) -> dict[str, Any]:
    """Approve the next step (or reject) an open proposal; returns the updated proposal."""
    if decision not in ("approve", "reject"):
        raise ValueError(f"unknown decision {decision!r}")
    p, a = rt.proposals, rt.approvals
    async with db.write_transaction(engine) as conn:
        row = (
            (await conn.execute(select(p).where(p.c.id == proposal_id).with_for_update()))
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise ProposalNotFound(f"no proposal {proposal_id}")
        if row["status"] != "open":
            raise ProposalConflict(f"proposal {proposal_id} is {row['status']}, not open")
        steps = [tuple(s) for s in json.loads(row["approvals_required"])]
        done = int(row["approved_level"])
        level, role = steps[done]
        if not can_fill(user, str(role), settings.approvers):
            raise ApprovalForbidden(
                f"step {done + 1} of proposal {proposal_id} needs the {role} approver (level {level})"
            )
        earlier = await conn.scalar(
            select(func.count()).where(a.c.proposal_id == proposal_id, a.c.user_name == user.name)
        )
        if decision == "approve" and earlier:
            raise ApprovalForbidden(
                f"{user.name} already approved a step of proposal {proposal_id} (four eyes)"
            )
        now = db.utcnow()
        await conn.execute(
            a.insert().values(
                proposal_id=proposal_id,
                level=int(level),
                role=str(role),
                decision=decision,
                user_name=user.name,
                comment=comment,
                at=now,
            )
        )
        values: dict[str, Any] = {}
        if decision == "reject":
            values = {"status": "rejected", "decided_at": now}
        else:
            values = {"approved_level": done + 1}
            if done + 1 == len(steps):
                values |= {"status": "approved", "decided_at": now}
        await conn.execute(update(p).where(p.c.id == proposal_id).values(**values))
        return await get_proposal(conn, proposal_id)


__all__ = ["can_fill", "decide", "get_proposal"]
