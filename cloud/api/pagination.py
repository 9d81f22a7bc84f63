"""Pagination: ``limit``/``offset`` (``paginate``) and keyset cursors (``keyset_page``).

An offset page shifts when rows arrive while a client pages (a row inserted before the page is seen
twice, or one is skipped); a cursor names the last row returned, so the next page starts right
after it whatever was inserted meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud.core import db
from cloud.core.errors import ApiError
from shelfsense.contract import INT64_MAX

MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX, description="rows to skip")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page (exact while rows arrive)"),
]


async def paginate(
    conn: AsyncConnection, query: Select[Any], limit: int, offset: int
) -> tuple[Sequence[RowMapping], int]:
    """One page of ``query`` (which must be ordered) and the total row count."""
    total = await count_rows(conn, query)
    rows = (await conn.execute(query.limit(limit).offset(offset))).mappings().all()
    return rows, total


async def count_rows(conn: AsyncConnection, query: Select[Any]) -> int:
    total = await conn.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total or 0)


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor for a row's sort key (datetimes and ints)."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The sort key a cursor names; 422 ``invalid_cursor`` if it is not one of ours."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("wrong length")
        return [
            db.utc(datetime.fromisoformat(v)) if kind is datetime else kind(v)
            for v, kind in zip(raw, kinds, strict=True)
        ]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_cursor", "cursor is not a next_cursor of this listing") from exc


def _after(keys: Sequence[ColumnElement[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in descending ``keys`` order (row-value comparison, spelled
    out so that each bound value takes its column's type on every backend)."""
    clause: ColumnElement[bool] = false()
    for i in reversed(range(len(keys))):
        equal = [keys[j] == values[j] for j in range(i)]
        clause = or_(and_(*equal, keys[i] < values[i]), clause)
    return clause


async def keyset_page(
    conn: AsyncConnection,
    query: Select[Any],
    keys: Sequence[ColumnElement[Any]],
    kinds: Sequence[type],
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[RowMapping], str | None]:
    """One page of ``query`` in descending ``keys`` order (unique together, e.g. time then id),
    starting after ``cursor``; the second value is the cursor of the next page (None at the end)."""
    page = query.order_by(None).order_by(*(k.desc() for k in keys))
    if cursor is not None:
        page = page.where(_after(keys, decode_cursor(cursor, kinds)))
    rows = (await conn.execute(page.limit(limit + 1))).mappings().all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor([last[k.key] for k in keys])


__all__ = [
    "MAX_LIMIT",
    "Cursor",
    "Limit",
    "Offset",
    "count_rows",
    "decode_cursor",
    "encode_cursor",
    "keyset_page",
    "paginate",
]
