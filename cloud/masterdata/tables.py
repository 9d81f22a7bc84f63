"""Tables of master data: locations, products, lots and items. On the shared metadata."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
)

from cloud.core.db import EPC, ID, UtcDateTime, metadata

LOCATION_KINDS = ("site_area", "zone", "shelf", "cold_room", "dock")

locations = Table(
    "locations",
    metadata,
    Column("site_id", ID, ForeignKey("sites.site_id"), primary_key=True),
    Column("location_id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("parent_id", ID),
    Column("name", String(200), nullable=False, default=""),
    # Readers cover it: only such locations take part in continuous stocktake reconciliation.
    Column("rfid_coverage", Boolean, nullable=False, default=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # GS1 Global Location Number (revision 0012): 13 digits, the length of its company prefix and
    # the SGLN extension; EPCIS exports it as urn:epc:id:sgln:<prefix>.<reference>.<extension>.
    Column("gln", String(13)),
    Column("gcp_length", SmallInteger),
    Column("gln_extension", String(20)),
    ForeignKeyConstraint(
        ["site_id", "parent_id"], ["locations.site_id", "locations.location_id"], name="fk_locations_parent"
    ),
    Index("ix_locations_parent", "site_id", "parent_id"),
    Index("ux_locations_sgln", "gln", "gln_extension", unique=True),
)

products = Table(
    "products",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("gtin", String(14), unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("shelf_life_days", Integer),
    Column("storage_temp_min_c", Float),
    Column("storage_temp_max_c", Float),
    Column("updated_at", UtcDateTime, nullable=False),
    # Shelf-life model (revision 0005, cloud.lots.history); NULL = defaults, see product_model there.
    Column("shelf_life_model", String(16)),
    Column("activation_energy_kj", Float),
    Column("q10", Float),
    Column("reference_temp_c", Float),
)

lots = Table(
    "lots",
    metadata,
    Column("sku", ID, ForeignKey("products.sku"), primary_key=True),
    Column("lot_code", ID, primary_key=True),
    Column("expiry", Date),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_lots_expiry", "expiry"),
)

items = Table(
    "items",
    metadata,
    Column("epc", EPC, primary_key=True),
    Column("sku", ID, ForeignKey("products.sku"), nullable=False),
    Column("lot_code", ID),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["sku", "lot_code"], ["lots.sku", "lots.lot_code"], name="fk_items_lot"),
    Index("ix_items_sku_lot", "sku", "lot_code"),
)

__all__ = ["LOCATION_KINDS", "items", "locations", "lots", "products"]
