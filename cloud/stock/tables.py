"""Tables of stock: tag observations, portal passages, the movements ledger and items on hand.

On the shared metadata (:mod:`cloud.tables`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    text,
)

from cloud.core.db import EPC, ID, UtcDateTime, event_columns, metadata

tag_observations = Table(
    "tag_observations",
    metadata,
    *event_columns(),
    Column("epc", EPC, nullable=False),
    Column("reader", ID, nullable=False),
    Column("antenna", Integer, nullable=False),
    Column("rssi", Float),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("count", Integer, nullable=False),
    Column("location", ID),
    Index("ix_tag_observations_epc", "epc", "last_seen"),
    Index("ix_tag_observations_site", "site_id"),
)

portal_passages = Table(
    "portal_passages",
    metadata,
    *event_columns(),
    Column("epc", EPC, nullable=False),
    Column("portal", ID, nullable=False),
    Column("direction", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("inside_location", ID),
    Column("outside_location", ID),
    # Direction unknown (revision 0012): why, and the stocktake run that resolved it (NULL = open:
    # flagged for the stocktake; no stock was moved).
    Column("unknown_reason", String(16)),
    Column("resolved_run_id", BigInteger),
    Index("ix_portal_passages_epc", "epc", "at"),
    Index("ix_portal_passages_site", "site_id"),
    Index(
        "ix_portal_passages_unresolved",
        "site_id",
        "at",
        sqlite_where=text("direction = 'unknown' AND resolved_run_id IS NULL"),
        postgresql_where=text("direction = 'unknown' AND resolved_run_id IS NULL"),
    ),
)

stock_movements = Table(
    "stock_movements",
    metadata,
    *event_columns(),
    Column("epc", EPC, nullable=False),
    Column("from_location", ID),
    Column("to_location", ID),
    Column("reason", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_stock_movements_epc", "epc", "at"),
    # Which items moved at a site since a late reading's time (lot read model, migration 0014).
    Index("ix_stock_movements_site_at", "site_id", "at"),
    Index("ix_stock_movements_at", "at", "id"),  # the ledger's keyset order (GET /movements)
)

# Current stock: the latest movement per (site, epc). ``present`` false = left the site.
stock_items = Table(
    "stock_items",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("epc", EPC, primary_key=True),
    Column("location", ID),
    Column("present", Boolean, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_stock_items_location", "site_id", "present", "location"),
)

__all__ = ["portal_passages", "stock_items", "stock_movements", "tag_observations"]
