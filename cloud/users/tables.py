"""Tables of sites, users and their tokens (edge tokens too: ``kind``). On the shared metadata."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    String,
    Table,
    Text,
)

from cloud.core.db import ID, UtcDateTime, metadata

sites = Table(
    "sites",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# ``sites``: the sites a user may see and act on, comma-separated; NULL means every site (what users
# made before migration 0011 got). A disabled user (``disabled_at`` set) is refused everywhere.
users = Table(
    "users",
    metadata,
    Column("name", ID, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sites", Text),
    Column("disabled_at", UtcDateTime),
)

# Only the SHA-256 of a token is stored; ``kind`` says whether it belongs to an edge or a user.
tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("edge_id", ID, ForeignKey("edges.edge_id")),
    Column("user_name", ID, ForeignKey("users.name")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

__all__ = ["sites", "tokens", "users"]
