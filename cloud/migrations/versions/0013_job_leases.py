"""job leases

Revision ID: 0013
Revises: 0009

A periodic job's row becomes a lease: ``lease_until`` is set when a replica claims a run and cleared
when the run finishes, and no other replica claims the job while the lease holds. Without it a run
that outlasted its interval (a slow database, a large stocktake) could overlap the next interval's
run on another replica. A replica that dies mid-run holds the lease only until ``lease_until``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
