"""direction-unknown passages, location GLNs, captured EPCIS events

Revision ID: 0012
Revises: 0010

* ``portal_passages.unknown_reason`` / ``resolved_run_id``: a passage the edge could not give a
  direction (one zone only, or a portal reader down) moves no stock and stays flagged until a
  stocktake run resolves it; a partial index finds the open ones per site.
* ``locations.gln`` / ``gcp_length`` / ``gln_extension``: exported as SGLN URIs in EPCIS and used
  to resolve a captured event's bizLocation to a site and location (unique).
* ``epcis_events``: events captured through ``POST /api/v1/epcis/capture``, one row per eventID.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UNRESOLVED = sa.text("direction = 'unknown' AND resolved_run_id IS NULL")


def upgrade() -> None:
    # A database made by an older create_all and adopted (see cloud.core.migrate) may already
    # have the new passage columns: add only what is missing.
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("portal_passages")}
    new: list[sa.Column[object]] = [
        sa.Column("unknown_reason", sa.String(length=16), nullable=True),
        sa.Column("resolved_run_id", sa.BigInteger(), nullable=True),
    ]
    with op.batch_alter_table("portal_passages") as batch:
        for column in new:
            if column.name not in existing:
                batch.add_column(column)
    op.create_index(
        "ix_portal_passages_unresolved",
        "portal_passages",
        ["site_id", "at"],
        unique=False,
        if_not_exists=True,
        sqlite_where=_UNRESOLVED,
        postgresql_where=_UNRESOLVED,
    )
    with op.batch_alter_table("locations") as batch:
        batch.add_column(sa.Column("gln", sa.String(length=13), nullable=True))
        batch.add_column(sa.Column("gcp_length", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("gln_extension", sa.String(length=20), nullable=True))
    op.create_index("ux_locations_sgln", "locations", ["gln", "gln_extension"], unique=True)
    op.create_table(
        "epcis_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("captured_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_key"),
    )


def downgrade() -> None:
    op.drop_table("epcis_events")
    op.drop_index("ux_locations_sgln", table_name="locations")
    with op.batch_alter_table("locations") as batch:
        batch.drop_column("gln_extension")
        batch.drop_column("gcp_length")
        batch.drop_column("gln")
    op.drop_index("ix_portal_passages_unresolved", table_name="portal_passages")
    with op.batch_alter_table("portal_passages") as batch:
        batch.drop_column("resolved_run_id")
        batch.drop_column("unknown_reason")
