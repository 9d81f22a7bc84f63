"""alert storm control

Revision ID: 0017
Revises: 0016

One row per (channel, site, zone): the hour window a channel's rate limit counts in, how many
messages it sent in it, and what quiet hours or the limit held back for the next digest. In the
database so that the limit holds across restarts and replicas.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_storm",
        sa.Column("channel", sa.String(128), primary_key=True),
        sa.Column("site_id", sa.String(128), primary_key=True),
        sa.Column("zone", sa.String(128), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("held_raised", sa.Integer(), nullable=False),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_quiet", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_storm")
