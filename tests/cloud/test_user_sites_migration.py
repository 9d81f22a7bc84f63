"""Revision 0011 on a database with users, tokens and page sessions from before it: every existing
user keeps every site and stays enabled, sessions keep working (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text
from test_coldchain_migration import alembic_to

from cloud.api.deps import bearer_user
from cloud.core import db
from cloud.core.migrate import head_revision, upgrade_to_head
from cloud.core.security import Role, hash_token
from cloud.web import sessions

T = datetime(2025, 1, 1).replace(tzinfo=None)
TOKEN = "ssu_token-from-before-0011-abcdef"
SESSION = "ssw_session-from-before-0011-abcdef"


async def test_existing_users_keep_every_site_and_their_sessions(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        async with db.write_transaction(engine) as conn:
            await conn.run_sync(alembic_to("0008"))
            await conn.execute(
                text("INSERT INTO users (name, role, created_at) VALUES ('old', 'admin', :t)"), {"t": T}
            )
            await conn.execute(
                text(
                    "INSERT INTO tokens (token_hash, kind, user_name, created_at) "
                    "VALUES (:h, 'user', 'old', :t)"
                ),
                {"h": hash_token(TOKEN), "t": T},
            )
            await conn.execute(
                text(
                    "INSERT INTO web_sessions (session_hash, user_name, created_at, expires_at) "
                    "VALUES (:h, 'old', :t, :e)"
                ),
                {
                    "h": hash_token(SESSION),
                    "t": T,
                    "e": datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1),
                },
            )
        assert await upgrade_to_head(engine) == head_revision()
        user = await bearer_user(engine, f"Bearer {TOKEN}")
        assert (user.name, user.role, user.sites) == ("old", Role.admin, None)  # None: every site
        session_user = await sessions.session_user(engine, SESSION)
        assert session_user is not None and session_user.sites is None
        async with db.write_transaction(engine) as conn:  # and back down
            await conn.run_sync(alembic_to("0008", down=True))
            columns = [c["name"] for c in await conn.run_sync(lambda c: inspect(c).get_columns("users"))]
        assert "sites" not in columns and "disabled_at" not in columns
    finally:
        await engine.dispose()
