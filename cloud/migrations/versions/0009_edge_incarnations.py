"""edge incarnations: one sequence stream per edge database

Revision ID: 0009
Revises: 0008

An edge whose database was wiped starts its sequence numbers at 1 again, under a new incarnation
id (edge.incarnation). ``edges`` keeps the current stream (``incarnation``, ``seq_offset``: where
its numbers start in ``events.seq``); ``edge_incarnations`` remembers every stream an edge had, so
batches of a replaced database are refused rather than mixed into the new stream. ``disk_full``
and ``disk_full_since``: the edge says in its batches that its disk is full (edge.diskfull).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _edges_have_incarnation() -> bool:
    """True for a database adopted from ``metadata.create_all`` of this code (see cloud.core.migrate)."""
    return "incarnation" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("edges")}


def upgrade() -> None:
    if not _edges_have_incarnation():
        _add_edge_columns()
    if not sa.inspect(op.get_bind()).has_table("edge_incarnations"):
        _create_table()


def _add_edge_columns() -> None:
    with op.batch_alter_table("edges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incarnation", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("seq_offset", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("incarnation_started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("disk_full", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.add_column(sa.Column("disk_full_since", sa.DateTime(timezone=True), nullable=True))


def _create_table() -> None:
    op.create_table(
        "edge_incarnations",
        sa.Column("edge_id", sa.String(length=128), nullable=False),
        sa.Column("incarnation", sa.String(length=64), nullable=False),
        sa.Column("seq_offset", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["edge_id"], ["edges.edge_id"]),
        sa.PrimaryKeyConstraint("edge_id", "incarnation"),
    )


def downgrade() -> None:
    op.drop_table("edge_incarnations")
    with op.batch_alter_table("edges", schema=None) as batch_op:
        batch_op.drop_column("disk_full_since")
        batch_op.drop_column("disk_full")
        batch_op.drop_column("incarnation_started_at")
        batch_op.drop_column("seq_offset")
        batch_op.drop_column("incarnation")
