"""demand history: imported sales / consumption per SKU, location and day

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("demand_history"):  # adopted from metadata.create_all
        return
    op.create_table(
        "demand_history",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("location_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), sa.ForeignKey("products.sku"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "location_id", "sku", "day"),
    )


def downgrade() -> None:
    op.drop_table("demand_history")
