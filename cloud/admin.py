"""Administrative operations: register edges and users, issue and revoke tokens.

Each operation has an async variant taking an engine (for code already in an event loop, e.g. the
demo) and a sync wrapper taking a database URL (for the CLI). Tokens are returned once and only
their SHA-256 is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.core.errors import AdminError
from cloud.core.security import EDGE_TOKEN_PREFIX, USER_TOKEN_PREFIX, Role, hash_token, new_token
from shelfsense.contract import IDENT_PATTERN

T = TypeVar("T")
MIN_TOKEN_LENGTH = 16


def _check_ident(what: str, value: str) -> None:
    if not re.fullmatch(IDENT_PATTERN, value):
        raise AdminError(f"{what} {value!r} is not a valid identifier (letters, digits, _ . : -)")


def _check_token(token: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise AdminError(f"a token must be at least {MIN_TOKEN_LENGTH} characters without spaces")


@contextlib.asynccontextmanager
async def _write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction (SQLite: BEGIN IMMEDIATE, so it queues behind other writers instead of
    failing with "database is locked" when upgrading a read lock)."""
    async with db.write_transaction(engine) as conn:
        yield conn


async def _ensure_site(conn: AsyncConnection, site_id: str) -> None:
    found = await conn.scalar(select(db.sites.c.site_id).where(db.sites.c.site_id == site_id))
    if found is None:
        await conn.execute(db.sites.insert().values(site_id=site_id, created_at=db.utcnow()))


async def create_edge_async(
    engine: AsyncEngine, site_id: str, name: str, *, token: str | None = None
) -> tuple[str, str]:
    """Register edge ``name`` on ``site_id`` (created if needed); returns ``(edge_id, token)``.

    Calling it again for an existing edge issues an additional token (rotation: revoke the old
    one afterwards). ``token`` lets the demo use a fixed token; normally one is generated.
    """
    _check_ident("site_id", site_id)
    _check_ident("edge name", name)
    if token is not None:
        _check_token(token)
    token = token or new_token(EDGE_TOKEN_PREFIX)
    await db.create_all(engine)
    async with _write(engine) as conn:
        await _ensure_site(conn, site_id)
        existing = await conn.scalar(select(db.edges.c.site_id).where(db.edges.c.edge_id == name))
        if existing is None:
            await conn.execute(
                db.edges.insert().values(edge_id=name, site_id=site_id, created_at=db.utcnow())
            )
        elif existing != site_id:
            raise AdminError(f"edge {name!r} already belongs to site {existing!r}")
        await conn.execute(
            db.tokens.insert().values(
                token_hash=hash_token(token), kind="edge", edge_id=name, created_at=db.utcnow()
            )
        )
    return name, token


async def create_user_async(engine: AsyncEngine, name: str, role: str, *, token: str | None = None) -> str:
    """Create user ``name`` (or change its role) and return a new token for it."""
    _check_ident("user name", name)
    if role not in Role.__members__:
        raise AdminError(f"role {role!r} is not one of {', '.join(Role.__members__)}")
    if token is not None:
        _check_token(token)
    token = token or new_token(USER_TOKEN_PREFIX)
    await db.create_all(engine)
    async with _write(engine) as conn:
        existing = await conn.scalar(select(db.users.c.name).where(db.users.c.name == name))
        if existing is None:
            await conn.execute(db.users.insert().values(name=name, role=role, created_at=db.utcnow()))
        else:
            await conn.execute(update(db.users).where(db.users.c.name == name).values(role=role))
        await conn.execute(
            db.tokens.insert().values(
                token_hash=hash_token(token), kind="user", user_name=name, created_at=db.utcnow()
            )
        )
    return token


async def revoke_token_async(engine: AsyncEngine, token: str) -> bool:
    """Revoke one token; False if it is unknown or already revoked."""
    async with _write(engine) as conn:
        result = await conn.execute(
            update(db.tokens)
            .where(db.tokens.c.token_hash == hash_token(token), db.tokens.c.revoked_at.is_(None))
            .values(revoked_at=db.utcnow())
        )
    return result.rowcount > 0


async def revoke_edge_tokens_async(engine: AsyncEngine, edge_id: str) -> int:
    """Revoke every live token of an edge; returns how many were revoked."""
    async with _write(engine) as conn:
        result = await conn.execute(
            update(db.tokens)
            .where(db.tokens.c.edge_id == edge_id, db.tokens.c.revoked_at.is_(None))
            .values(revoked_at=db.utcnow())
        )
    return result.rowcount


def _run(db_url: str, operation: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = db.create_engine(db_url)
        try:
            return await operation(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def create_edge(db_url: str, site_id: str, name: str, *, token: str | None = None) -> tuple[str, str]:
    return _run(db_url, lambda engine: create_edge_async(engine, site_id, name, token=token))


def create_user(db_url: str, name: str, role: str, *, token: str | None = None) -> str:
    return _run(db_url, lambda engine: create_user_async(engine, name, role, token=token))


def revoke_token(db_url: str, token: str) -> bool:
    return _run(db_url, lambda engine: revoke_token_async(engine, token))


def revoke_edge_tokens(db_url: str, edge_id: str) -> int:
    return _run(db_url, lambda engine: revoke_edge_tokens_async(engine, edge_id))


__all__ = [
    "create_edge",
    "create_edge_async",
    "create_user",
    "create_user_async",
    "revoke_edge_tokens",
    "revoke_edge_tokens_async",
    "revoke_token",
    "revoke_token_async",
]
