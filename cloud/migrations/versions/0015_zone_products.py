"""items per location and product

Revision ID: 0015
Revises: 0014

``zone_products`` counts the present items per (site, location, product) so the ingest
transaction finds a zone's products (for their storage temperatures) from a few rows instead of
joining every on-hand item of the site (cloud/services/zone_stock.py). Filled from the current
stock here; kept current by every stock upsert and item registration afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(length=128)


def upgrade() -> None:
    if "zone_products" in sa.inspect(op.get_bind()).get_table_names():
        return  # adopted from create_all (see cloud.core.migrate): nothing to count from yet
    op.create_table(
        "zone_products",
        sa.Column("site_id", _ID, nullable=False),
        sa.Column("location", _ID, nullable=False),
        sa.Column("sku", _ID, nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "location", "sku"),
    )
    op.execute(
        "INSERT INTO zone_products (site_id, location, sku, items) "
        "SELECT s.site_id, s.location, i.sku, COUNT(*) FROM stock_items s JOIN items i ON i.epc = s.epc "
        "WHERE s.present AND s.location IS NOT NULL GROUP BY s.site_id, s.location, i.sku"
    )


def downgrade() -> None:
    op.drop_table("zone_products")
