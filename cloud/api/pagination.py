"""``limit``/``offset`` pagination returning ``{"items": [...], "total": N}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from shelfsense.contract import INT64_MAX

MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="rows to skip")]


async def paginate(
    conn: AsyncConnection, query: Select[Any], limit: int, offset: int
) -> tuple[Sequence[RowMapping], int]:
    """One page of ``query`` (which must be ordered) and the total row count."""
    total = await conn.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = (await conn.execute(query.limit(limit).offset(offset))).mappings().all()
    return rows, int(total or 0)


__all__ = ["MAX_LIMIT", "Limit", "Offset", "paginate"]
