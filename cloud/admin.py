"""Administrative operations: register edges and users, issue and revoke tokens, disable users.

Each operation has an async variant taking an engine (for code already in an event loop, e.g. the
demo) and a sync wrapper taking a database URL (for the CLI). Tokens are returned once and only
their SHA-256 is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.core import db
from cloud.core.errors import AdminError
from cloud.core.security import (
    EDGE_TOKEN_PREFIX,
    USER_TOKEN_PREFIX,
    Role,
    format_sites,
    hash_token,
    new_token,
    parse_sites,
)
from cloud.ingest import tables as ingest_db
from cloud.users import tables as users_db
from cloud.web.tables import web_sessions
from shelfsense.contract import IDENT_PATTERN

T = TypeVar("T")
MIN_TOKEN_LENGTH = 16
ALL_SITES = "*"  # in a list of sites: every site, now and later


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
    found = await conn.scalar(select(users_db.sites.c.site_id).where(users_db.sites.c.site_id == site_id))
    if found is None:
        await conn.execute(users_db.sites.insert().values(site_id=site_id, created_at=db.utcnow()))


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
        existing = await conn.scalar(
            select(ingest_db.edges.c.site_id).where(ingest_db.edges.c.edge_id == name)
        )
        if existing is None:
            await conn.execute(
                ingest_db.edges.insert().values(edge_id=name, site_id=site_id, created_at=db.utcnow())
            )
        elif existing != site_id:
            raise AdminError(f"edge {name!r} already belongs to site {existing!r}")
        await conn.execute(
            users_db.tokens.insert().values(
                token_hash=hash_token(token), kind="edge", edge_id=name, created_at=db.utcnow()
            )
        )
    return name, token


def _sites_column(sites: Sequence[str]) -> str | None:
    """``users.sites`` for a list of site ids, or NULL (every site) for ``["*"]``."""
    if list(sites) == [ALL_SITES]:
        return None
    if not sites:
        raise AdminError(f"give at least one site (or {ALL_SITES!r} for every site)")
    for site in sites:
        _check_ident("site_id", site)
    return format_sites(sites)


async def create_user_async(
    engine: AsyncEngine,
    name: str,
    role: str,
    *,
    token: str | None = None,
    sites: Sequence[str] | None = None,
) -> str:
    """Create user ``name`` (or change its role) and return a new token for it.

    ``sites``: the sites the user may see and act on (``["*"]``: every site). A new user without
    ``sites`` gets every site; an existing user keeps theirs unless ``sites`` is given.
    """
    _check_ident("user name", name)
    if role not in Role.__members__:
        raise AdminError(f"role {role!r} is not one of {', '.join(Role.__members__)}")
    if token is not None:
        _check_token(token)
    values: dict[str, Any] = {"role": role}
    if sites is not None:
        values["sites"] = _sites_column(sites)
    token = token or new_token(USER_TOKEN_PREFIX)
    await db.create_all(engine)
    async with _write(engine) as conn:
        existing = await conn.scalar(select(users_db.users.c.name).where(users_db.users.c.name == name))
        if existing is None:
            await conn.execute(users_db.users.insert().values(name=name, created_at=db.utcnow(), **values))
        else:
            await conn.execute(update(users_db.users).where(users_db.users.c.name == name).values(**values))
        await conn.execute(
            users_db.tokens.insert().values(
                token_hash=hash_token(token), kind="user", user_name=name, created_at=db.utcnow()
            )
        )
    return token


async def list_users_async(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every user: name, role, sites (None: every site), disabled, live token count."""
    u, t = users_db.users, users_db.tokens
    live = select(func.count()).where(t.c.user_name == u.c.name, t.c.revoked_at.is_(None)).scalar_subquery()
    query = select(u.c.name, u.c.role, u.c.sites, u.c.disabled_at, live.label("tokens")).order_by(u.c.name)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        {
            "name": r["name"],
            "role": r["role"],
            "sites": None if r["sites"] is None else sorted(parse_sites(r["sites"]) or ()),
            "disabled": r["disabled_at"] is not None,
            "tokens": int(r["tokens"]),
        }
        for r in rows
    ]


async def set_user_disabled_async(engine: AsyncEngine, name: str, disabled: bool) -> None:
    """Disable (tokens refused, page sessions ended) or enable again a user."""
    async with _write(engine) as conn:
        result = await conn.execute(
            update(users_db.users)
            .where(users_db.users.c.name == name)
            .values(disabled_at=db.utcnow() if disabled else None)
        )
        if result.rowcount == 0:
            raise AdminError(f"no user {name!r}")
        if disabled:
            await conn.execute(delete(web_sessions).where(web_sessions.c.user_name == name))


async def revoke_user_tokens_async(engine: AsyncEngine, name: str) -> int:
    """Revoke every live token of a user (their sessions started from them end too)."""
    async with _write(engine) as conn:
        if await conn.scalar(select(users_db.users.c.name).where(users_db.users.c.name == name)) is None:
            raise AdminError(f"no user {name!r}")
        result = await conn.execute(
            update(users_db.tokens)
            .where(users_db.tokens.c.user_name == name, users_db.tokens.c.revoked_at.is_(None))
            .values(revoked_at=db.utcnow())
        )
    return result.rowcount


async def revoke_token_async(engine: AsyncEngine, token: str) -> bool:
    """Revoke one token; False if it is unknown or already revoked."""
    async with _write(engine) as conn:
        result = await conn.execute(
            update(users_db.tokens)
            .where(users_db.tokens.c.token_hash == hash_token(token), users_db.tokens.c.revoked_at.is_(None))
            .values(revoked_at=db.utcnow())
        )
    return result.rowcount > 0


async def revoke_edge_tokens_async(engine: AsyncEngine, edge_id: str) -> int:
    """Revoke every live token of an edge; returns how many were revoked."""
    async with _write(engine) as conn:
        result = await conn.execute(
            update(users_db.tokens)
            .where(users_db.tokens.c.edge_id == edge_id, users_db.tokens.c.revoked_at.is_(None))
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


def create_user(
    db_url: str, name: str, role: str, *, token: str | None = None, sites: Sequence[str] | None = None
) -> str:
    return _run(db_url, lambda engine: create_user_async(engine, name, role, token=token, sites=sites))


def set_user_disabled(db_url: str, name: str, disabled: bool) -> None:
    _run(db_url, lambda engine: set_user_disabled_async(engine, name, disabled))


def revoke_user_tokens(db_url: str, name: str) -> int:
    return _run(db_url, lambda engine: revoke_user_tokens_async(engine, name))


def revoke_token(db_url: str, token: str) -> bool:
    return _run(db_url, lambda engine: revoke_token_async(engine, token))


def revoke_edge_tokens(db_url: str, edge_id: str) -> int:
    return _run(db_url, lambda engine: revoke_edge_tokens_async(engine, edge_id))


__all__ = [
    "ALL_SITES",
    "create_edge",
    "create_edge_async",
    "create_user",
    "create_user_async",
    "list_users_async",
    "revoke_edge_tokens",
    "revoke_edge_tokens_async",
    "revoke_token",
    "revoke_token_async",
    "revoke_user_tokens",
    "revoke_user_tokens_async",
    "set_user_disabled",
    "set_user_disabled_async",
]
