"""replenishment (suppliers, parameters, purchase orders, proposals, approvals)

Revision ID: 0006
Revises: 0005

Tables defined in cloud/replenish/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("need_key", sa.String(length=400), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("location_id", sa.String(length=128), nullable=False),
        sa.Column("source_location", sa.String(length=128), nullable=True),
        sa.Column("supplier_id", sa.String(length=128), nullable=True),
        sa.Column("group_ref", sa.String(length=300), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit_cost", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("order_amount", sa.Float(), nullable=False),
        sa.Column("order_by", sa.Date(), nullable=True),
        sa.Column("expected_arrival", sa.Date(), nullable=True),
        sa.Column("need_by", sa.Date(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("approvals_required", sa.Text(), nullable=False),
        sa.Column("approved_level", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("export_claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("export_attempts", sa.Integer(), nullable=False),
        sa.Column("export_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint("kind IN ('purchase', 'transfer', 'markdown')", name="ck_proposals_kind"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index("ix_proposals_status", ["status", "site_id"], unique=False)
        batch_op.create_index(
            "ux_proposals_live_need",
            ["need_key"],
            unique=True,
            sqlite_where=sa.text("status IN ('open', 'approved')"),
            postgresql_where=sa.text("status IN ('open', 'approved')"),
        )

    op.create_table(
        "forecast_errors",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("location_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("demand_class", sa.String(length=16), nullable=False),
        sa.Column("mae", sa.Float(), nullable=True),
        sa.Column("bias", sa.Float(), nullable=True),
        sa.Column("mase", sa.Float(), nullable=True),
        sa.Column("forecast", sa.Float(), nullable=False),
        sa.Column("history_days", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "location_id", "sku", "run_date"),
    )
    with op.batch_alter_table("forecast_errors", schema=None) as batch_op:
        batch_op.create_index("ix_forecast_errors_sku", ["sku", "site_id"], unique=False)

    op.create_table(
        "suppliers",
        sa.Column("supplier_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lead_time_days", sa.Float(), nullable=False),
        sa.Column("lead_time_std_days", sa.Float(), nullable=False),
        sa.Column("order_weekdays", sa.String(length=20), nullable=False),
        sa.Column("moq", sa.Float(), nullable=False),
        sa.Column("order_cost", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("supplier_id"),
    )
    op.create_table(
        "approvals",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("proposal_id", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["proposals.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index("ix_approvals_proposal", ["proposal_id", "level"], unique=False)

    op.create_table(
        "product_suppliers",
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("supplier_id", sa.String(length=128), nullable=False),
        sa.Column("pack_size", sa.Float(), nullable=False),
        sa.Column("unit_cost", sa.Float(), nullable=False),
        sa.Column("moq", sa.Float(), nullable=True),
        sa.Column("lead_time_days", sa.Float(), nullable=True),
        sa.Column("preferred", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["products.sku"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.supplier_id"],
        ),
        sa.PrimaryKeyConstraint("sku", "supplier_id"),
    )
    with op.batch_alter_table("product_suppliers", schema=None) as batch_op:
        batch_op.create_index("ix_product_suppliers_supplier", ["supplier_id"], unique=False)

    op.create_table(
        "purchase_orders",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("po_number", sa.String(length=128), nullable=False),
        sa.Column("supplier_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ordered_at", sa.Date(), nullable=True),
        sa.Column("expected_date", sa.Date(), nullable=False),
        sa.Column("received_date", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.supplier_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("po_number"),
    )
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.create_index("ix_purchase_orders_status", ["status", "site_id"], unique=False)

    op.create_table(
        "purchase_order_lines",
        sa.Column("po_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("location_id", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("received_quantity", sa.Float(), nullable=False),
        sa.Column("unit_cost", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["po_id"], ["purchase_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["products.sku"],
        ),
        sa.PrimaryKeyConstraint("po_id", "line_no"),
    )
    with op.batch_alter_table("purchase_order_lines", schema=None) as batch_op:
        batch_op.create_index("ix_purchase_order_lines_sku", ["sku", "location_id"], unique=False)

    op.create_table(
        "replenishment_params",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("location_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("service_level", sa.Float(), nullable=True),
        sa.Column("review_period_days", sa.Float(), nullable=True),
        sa.Column("min_qty", sa.Float(), nullable=True),
        sa.Column("max_qty", sa.Float(), nullable=True),
        sa.Column("reserved", sa.Float(), nullable=False),
        sa.Column("supplier_id", sa.String(length=128), nullable=True),
        sa.Column("holding_cost_per_unit_year", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id", "location_id"],
            ["locations.site_id", "locations.location_id"],
            name="fk_replenishment_params_location",
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            ["products.sku"],
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.supplier_id"],
        ),
        sa.PrimaryKeyConstraint("site_id", "location_id", "sku"),
    )


def downgrade() -> None:
    op.drop_table("replenishment_params")
    with op.batch_alter_table("purchase_order_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_order_lines_sku")

    op.drop_table("purchase_order_lines")
    with op.batch_alter_table("purchase_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_orders_status")

    op.drop_table("purchase_orders")
    with op.batch_alter_table("product_suppliers", schema=None) as batch_op:
        batch_op.drop_index("ix_product_suppliers_supplier")

    op.drop_table("product_suppliers")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_approvals_proposal")

    op.drop_table("approvals")
    with op.batch_alter_table("forecast_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_forecast_errors_sku")

    op.drop_table("forecast_errors")
    op.drop_table("suppliers")
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_proposals_live_need",
            sqlite_where=sa.text("status IN ('open', 'approved')"),
            postgresql_where=sa.text("status IN ('open', 'approved')"),
        )
        batch_op.drop_index("ix_proposals_status")

    op.drop_table("proposals")
