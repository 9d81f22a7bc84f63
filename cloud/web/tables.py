"""Tables of the operator web page, on the shared metadata (imported at the bottom of cloud.core.db).

Passwords are optional per user (API tokens keep working); only scrypt hashes are stored, in the
self-describing form of :mod:`cloud.web.passwords`. A session row is keyed by the SHA-256 of the
session cookie, like API tokens: a copy of the database does not let anyone log in.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from cloud.core.db import ID, UtcDateTime, metadata

web_passwords = Table(
    "web_passwords",
    metadata,
    Column("user_name", ID, ForeignKey("users.name"), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_name", ID, ForeignKey("users.name"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # The API token the session was started from (NULL: started with a password): the session ends
    # when that token is revoked.
    Column("token_hash", String(64)),
    Index("ix_web_sessions_expires", "expires_at"),
    Index("ix_web_sessions_user", "user_name"),
)

__all__ = ["metadata", "web_passwords", "web_sessions"]
