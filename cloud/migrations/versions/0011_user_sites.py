"""users scoped to sites, users disabled, page sessions bound to their API token

Revision ID: 0011
Revises: 0013

``users.sites`` lists the sites a user may see and act on (comma-separated); NULL means every site,
which is what every user existing before this revision keeps. ``users.disabled_at`` disables a user
(tokens and page sessions refused). ``web_sessions.token_hash`` ties a session started from an API
token to that token, so revoking the token ends the session.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _add_missing(table: str, *columns: sa.Column[object]) -> None:
    """Add the columns the table lacks (a database adopted from ``metadata.create_all`` of this
    code, see cloud.core.migrate, already has them)."""
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    missing = [c for c in columns if c.name not in existing]
    if missing:
        with op.batch_alter_table(table) as batch:
            for column in missing:
                batch.add_column(column)


def upgrade() -> None:
    _add_missing(
        "users",
        sa.Column("sites", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )
    _add_missing("web_sessions", sa.Column("token_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch rebuild of ``users`` would drop a
    # table that ``tokens`` and ``web_sessions`` reference.
    op.drop_column("web_sessions", "token_hash")
    op.drop_column("users", "disabled_at")
    op.drop_column("users", "sites")
