"""Tables of the restocking feature (revision 0006), on the shared metadata.

Imported at the bottom of :mod:`cloud.core.db`. Master data of replenishment (suppliers, what each
supplier sells at which pack size and cost, per product+location parameters), open purchase orders
(imported from an ERP or created when an approved proposal is exported) and proposals with their
approvals.

One proposal is one need line: a purchase of a product for a location from a supplier, or a transfer
from one location to another. Purchase lines of one run and supplier share a ``group_ref`` (the
purchase order draft) and carry the draft's total as ``order_amount``: approval thresholds look at
the order, so splitting a large order into lines never escapes the finance approver.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from cloud.core.db import ID, UtcDateTime, metadata

# markdown: sell expiring stock at a reduced price where no location would sell it in time.
PROPOSAL_KINDS = ("purchase", "transfer", "markdown")
PROPOSAL_STATUSES = ("open", "approved", "rejected", "exported")
# Proposals still waiting to be decided or executed: they suppress new proposals for the same need.
LIVE_STATUSES = ("open", "approved")
PO_STATUSES = ("open", "received", "cancelled")
NEED_KEY = String(400)

_AUTO_ID = BigInteger().with_variant(Integer, "sqlite")

suppliers = Table(
    "suppliers",
    metadata,
    Column("supplier_id", ID, primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("lead_time_days", Float, nullable=False, default=0.0),  # mean, calendar days
    Column("lead_time_std_days", Float, nullable=False, default=0.0),
    # date.weekday() numbers the supplier takes orders on, comma separated ("0,2,4" = Mon, Wed, Fri).
    Column("order_weekdays", String(20), nullable=False, default="0,1,2,3,4,5,6"),
    Column("moq", Float, nullable=False, default=0.0),
    Column("order_cost", Float),
    Column("updated_at", UtcDateTime, nullable=False),
)

product_suppliers = Table(
    "product_suppliers",
    metadata,
    Column("sku", ID, ForeignKey("products.sku"), primary_key=True),
    Column("supplier_id", ID, ForeignKey("suppliers.supplier_id"), primary_key=True),
    Column("pack_size", Float, nullable=False, default=1.0),
    Column("unit_cost", Float, nullable=False, default=0.0),
    Column("moq", Float),  # overrides the supplier's
    Column("lead_time_days", Float),  # overrides the supplier's
    Column("preferred", Boolean, nullable=False, default=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_product_suppliers_supplier", "supplier_id"),
)

replenishment_params = Table(
    "replenishment_params",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("location_id", ID, primary_key=True),
    Column("sku", ID, ForeignKey("products.sku"), primary_key=True),
    Column("service_level", Float),
    Column("review_period_days", Float),
    Column("min_qty", Float),  # overrides the computed reorder point
    Column("max_qty", Float),  # overrides the computed order-up-to level
    Column("reserved", Float, nullable=False, default=0.0),
    Column("supplier_id", ID, ForeignKey("suppliers.supplier_id")),  # overrides the preferred one
    Column("holding_cost_per_unit_year", Float),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(
        ["site_id", "location_id"],
        ["locations.site_id", "locations.location_id"],
        name="fk_replenishment_params_location",
    ),
)

purchase_orders = Table(
    "purchase_orders",
    metadata,
    Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
    Column("po_number", ID, nullable=False, unique=True),
    Column("supplier_id", ID, ForeignKey("suppliers.supplier_id"), nullable=False),
    Column("site_id", ID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("ordered_at", Date),
    Column("expected_date", Date, nullable=False),
    Column("received_date", Date),
    Column("source", String(16), nullable=False, default="import"),  # import | proposal
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_purchase_orders_status", "status", "site_id"),
)

purchase_order_lines = Table(
    "purchase_order_lines",
    metadata,
    Column("po_id", BigInteger, ForeignKey("purchase_orders.id", ondelete="CASCADE"), primary_key=True),
    Column("line_no", Integer, primary_key=True, autoincrement=False),
    Column("sku", ID, ForeignKey("products.sku"), nullable=False),
    Column("location_id", ID, nullable=False),
    Column("quantity", Float, nullable=False),
    Column("received_quantity", Float, nullable=False, default=0.0),
    Column("unit_cost", Float),
    Index("ix_purchase_order_lines_sku", "sku", "location_id"),
)

proposals = Table(
    "proposals",
    metadata,
    Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("kind", String(16), nullable=False),  # PROPOSAL_KINDS
    Column("status", String(16), nullable=False),
    Column("need_key", NEED_KEY, nullable=False),
    Column("sku", ID, nullable=False),
    Column("location_id", ID, nullable=False),  # the destination: whose need it covers
    Column("source_location", ID),  # transfers
    Column("supplier_id", ID),  # purchases
    Column("group_ref", String(300)),  # purchase order draft (run + supplier)
    Column("quantity", Float, nullable=False),
    Column("unit_cost", Float, nullable=False, default=0.0),
    Column("amount", Float, nullable=False, default=0.0),
    Column("order_amount", Float, nullable=False, default=0.0),
    Column("order_by", Date),
    Column("expected_arrival", Date),
    Column("need_by", Date),
    Column("late", Boolean, nullable=False, default=False),
    Column("reasoning", Text, nullable=False),  # JSON
    Column("approvals_required", Text, nullable=False),  # JSON [[level, role], ...] ordered by level
    Column("approved_level", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime),
    Column("exported_at", UtcDateTime),
    Column("export_claimed_at", UtcDateTime),  # a replica is delivering it (expires)
    Column("export_attempts", Integer, nullable=False, default=0),
    Column("export_error", String(500)),
    Index(
        "ux_proposals_live_need",
        "need_key",
        unique=True,
        sqlite_where=text("status IN ('open', 'approved')"),
        postgresql_where=text("status IN ('open', 'approved')"),
    ),
    Index("ix_proposals_status", "status", "site_id"),
    CheckConstraint("kind IN ('purchase', 'transfer', 'markdown')", name="ck_proposals_kind"),
)

# Imported demand (sales / consumption) per series and day (``cloud import --kind demand``): where a
# day is imported it replaces the outbound movements counted for that series and day.
demand_history = Table(
    "demand_history",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("location_id", ID, primary_key=True),
    Column("sku", ID, ForeignKey("products.sku"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("quantity", Float, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Forecast accuracy per series and run day: a day's runs all fit the same history (whole days up to
# yesterday), so one row per series and day, the last run of the day winning.
forecast_errors = Table(
    "forecast_errors",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("location_id", ID, primary_key=True),
    Column("sku", ID, primary_key=True),
    Column("run_date", Date, primary_key=True),
    Column("method", String(32), nullable=False),
    Column("demand_class", String(16), nullable=False),
    Column("mae", Float),  # NULL: not enough history to measure
    Column("bias", Float),  # mean forecast minus actual: positive = over-forecast
    Column("mase", Float),  # MAE over the naive forecast's in-sample MAE
    Column("forecast", Float, nullable=False),  # units per day
    Column("history_days", Integer, nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
    Index("ix_forecast_errors_sku", "sku", "site_id"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
    Column("proposal_id", BigInteger, ForeignKey("proposals.id"), nullable=False),
    Column("level", Integer, nullable=False),
    Column("role", String(64), nullable=False),  # the approval role this decision filled
    Column("decision", String(8), nullable=False),  # approve | reject
    Column("user_name", ID, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_approvals_proposal", "proposal_id", "level"),
)

__all__ = [
    "LIVE_STATUSES",
    "PO_STATUSES",
    "PROPOSAL_KINDS",
    "PROPOSAL_STATUSES",
    "approvals",
    "demand_history",
    "forecast_errors",
    "metadata",
    "product_suppliers",
    "proposals",
    "purchase_order_lines",
    "purchase_orders",
    "replenishment_params",
    "suppliers",
]
