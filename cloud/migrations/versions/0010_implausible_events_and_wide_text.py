"""events outside the plausible time window; alert limit sources of any length

Revision ID: 0010
Revises: 0011

- ``events.implausible``: the event's own time was outside the receiving cloud's plausibility
  window (``cloud.max_event_age_s`` / ``cloud.max_future_skew_s``). Such events are stored for
  audit but never projected; ``edges.events_implausible`` counts them per edge.
- ``alerts.limit_source`` becomes TEXT: a product-limit alert lists every SKU stored in the zone,
  which overflowed VARCHAR(160) on PostgreSQL and failed the batch on every resend (issue 18).

Each step checks the current schema first: a database made by an older ``create_all`` from the
current metadata and then adopted (cloud.core.migrate) already has these columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_ONE_OPEN = sa.text("status IN ('open', 'acknowledged')")


def _columns(table: str) -> dict[str, sa.types.TypeEngine[Any]]:
    return {c["name"]: c["type"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    # Plain ADD COLUMN (no batch mode): SQLite would otherwise copy the whole events table.
    if "implausible" not in _columns("events"):
        op.add_column(
            "events", sa.Column("implausible", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    if "events_implausible" not in _columns("edges"):
        op.add_column(
            "edges", sa.Column("events_implausible", sa.BigInteger(), nullable=False, server_default="0")
        )
    if isinstance(_columns("alerts")["limit_source"], sa.String) and not isinstance(
        _columns("alerts")["limit_source"], sa.Text
    ):
        _limit_source_type(sa.String(length=160), sa.Text())


def _limit_source_type(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> None:
    # SQLite rebuilds the (small) alerts table; the partial unique index is dropped and made again
    # so the rebuild cannot lose its WHERE clause.
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ux_alerts_one_open", sqlite_where=_ONE_OPEN, postgresql_where=_ONE_OPEN)
        batch_op.alter_column("limit_source", existing_type=old, type_=new, existing_nullable=True)
        batch_op.create_index(
            "ux_alerts_one_open",
            ["site_id", "zone", "rule"],
            unique=True,
            sqlite_where=_ONE_OPEN,
            postgresql_where=_ONE_OPEN,
        )


def downgrade() -> None:
    op.execute("UPDATE alerts SET limit_source = substr(limit_source, 1, 160)")
    _limit_source_type(sa.Text(), sa.String(length=160))
    with op.batch_alter_table("edges") as batch_op:
        batch_op.drop_column("events_implausible")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("implausible")
