"""Page sessions and passwords in the database, and the CSRF token bound to a session.

The session cookie is a random 256-bit token; only its SHA-256 is stored (as for API tokens). The
CSRF token is derived from the cookie (SHA-256 over a fixed label and the cookie): the page reads it
from ``GET /web/session`` (same-origin only) and sends it as ``X-CSRF-Token``; another site can
neither read the HttpOnly cookie nor that response, so it cannot forge the header. Deriving it
means nothing more to store, and logging out (deleting the row) invalidates both.

A session lives no longer than what it stands on: a session started from an API token ends when
that token is revoked, and every session of a disabled user ends (both checked on each request).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud.core import db
from cloud.core.errors import AdminError
from cloud.core.security import Role, hash_token, parse_sites
from cloud.users import tables as users_db
from cloud.web import passwords
from cloud.web.tables import web_passwords, web_sessions

SESSION_PREFIX = "ssw_"


@dataclass(frozen=True, slots=True)
class SessionUser:
    name: str
    role: Role
    sites: frozenset[str] | None = None  # None: every site
    token_hash: str | None = None  # the API token this login used, if any


def _live_user(row: Any, token_hash: str | None = None) -> SessionUser | None:
    """The user of a ``users`` row unless disabled or with an unknown role."""
    if row is None or row.disabled_at is not None or row.role not in Role.__members__:
        return None
    return SessionUser(
        name=row.name, role=Role[row.role], sites=parse_sites(row.sites), token_hash=token_hash
    )


def csrf_token(session_token: str) -> str:
    return hashlib.sha256(b"shelfsense-csrf\x00" + session_token.encode("utf-8")).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_token), presented)


async def create_session(engine: AsyncEngine, user: SessionUser, lifetime: timedelta) -> str:
    """A new session for ``user`` (bound to the API token it logged in with, if any); returns the
    cookie value. Expired rows are swept here."""
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = db.utcnow()
    async with db.write_transaction(engine) as conn:
        await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
        await conn.execute(
            web_sessions.insert().values(
                session_hash=hash_token(token),
                user_name=user.name,
                created_at=now,
                expires_at=now + lifetime,
                token_hash=user.token_hash,
            )
        )
    return token


async def session_user(engine: AsyncEngine, token: str) -> SessionUser | None:
    """The live session's user (with the role and sites as they are now), or None when the session
    expired, its user is disabled or the API token it started from was revoked."""
    s, u, t = web_sessions, users_db.users, users_db.tokens
    query = (
        select(u.c.name, u.c.role, u.c.sites, u.c.disabled_at, s.c.expires_at)
        .select_from(s.join(u, u.c.name == s.c.user_name).outerjoin(t, t.c.token_hash == s.c.token_hash))
        .where(
            s.c.session_hash == hash_token(token),
            or_(s.c.token_hash.is_(None), t.c.revoked_at.is_(None) & t.c.token_hash.is_not(None)),
        )
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one_or_none()
    if row is None or row.expires_at <= db.utcnow():
        return None
    return _live_user(row)


async def end_session(engine: AsyncEngine, token: str) -> bool:
    async with db.write_transaction(engine) as conn:
        query = delete(web_sessions).where(web_sessions.c.session_hash == hash_token(token))
        result = await conn.execute(query)
    return result.rowcount > 0


async def user_for_token(engine: AsyncEngine, token: str) -> SessionUser | None:
    """The user an API token belongs to (live user tokens only), for logging in with a token."""
    t, u = users_db.tokens, users_db.users
    token_hash = hash_token(token)
    query = (
        select(u.c.name, u.c.role, u.c.sites, u.c.disabled_at)
        .select_from(t.join(u, u.c.name == t.c.user_name))
        .where(t.c.token_hash == token_hash, t.c.kind == "user", t.c.revoked_at.is_(None))
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one_or_none()
    return _live_user(row, token_hash)


async def user_for_password(engine: AsyncEngine, name: str, password: str) -> SessionUser | None:
    """The user if ``password`` is theirs. Unknown users cost one scrypt too (no timing oracle)."""
    query = (
        select(
            users_db.users.c.name,
            users_db.users.c.role,
            users_db.users.c.sites,
            users_db.users.c.disabled_at,
            web_passwords.c.password_hash,
        )
        .select_from(users_db.users.join(web_passwords, web_passwords.c.user_name == users_db.users.c.name))
        .where(users_db.users.c.name == name)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one_or_none()
    stored = row.password_hash if row is not None else passwords.DUMMY_HASH
    ok = await asyncio.to_thread(passwords.verify_password, password, stored)
    user = _live_user(row) if ok else None
    if user is None:
        return None
    if passwords.needs_rehash(stored):
        await set_password_async(engine, user.name, password)
    return user


async def set_password_async(engine: AsyncEngine, name: str, password: str) -> None:
    """Set (or replace) the page password of an existing user; ends that user's sessions."""
    try:
        stored = await asyncio.to_thread(passwords.hash_password, password)
    except passwords.PasswordError as exc:
        raise AdminError(str(exc)) from exc
    async with db.write_transaction(engine) as conn:
        if await conn.scalar(select(users_db.users.c.name).where(users_db.users.c.name == name)) is None:
            raise AdminError(f"no user {name!r} (create it first)")
        now = db.utcnow()
        await conn.execute(delete(web_passwords).where(web_passwords.c.user_name == name))
        row = {"user_name": name, "password_hash": stored, "updated_at": now}
        await conn.execute(web_passwords.insert().values(**row))
        await conn.execute(delete(web_sessions).where(web_sessions.c.user_name == name))


def set_password(db_url: str, name: str, password: str) -> None:
    """Sync wrapper (CLI, tests): opens and disposes its own engine."""

    async def main() -> None:
        engine = db.create_engine(db_url)
        try:
            await set_password_async(engine, name, password)
        finally:
            await engine.dispose()

    asyncio.run(main())


__all__ = [
    "SESSION_PREFIX",
    "SessionUser",
    "create_session",
    "csrf_matches",
    "csrf_token",
    "end_session",
    "session_user",
    "set_password",
    "set_password_async",
    "user_for_password",
    "user_for_token",
]
