"""Tables of the lot-evidence read model (revision 0014), on the shared metadata.

``lot_evidence`` holds each lot's summary as :func:`cloud.lots.evidence.evaluate` computed it at
``as_of``; ``lot_evidence_stock`` its items on hand per (site, location); ``lot_evidence_marks``
what changed since (written in the same transaction as the change: an ingest batch, a master-data
import) and is still to be folded in by the catch-up job (:mod:`cloud.lots.readmodel`).
Imported at the bottom of :mod:`cloud.core.db`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Date, Float, Index, Integer, String, Table, text

from cloud.core.db import EPC, ID, UtcDateTime, metadata

lot_evidence = Table(
    "lot_evidence",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("lot_code", ID, primary_key=True),
    Column("lot_id", String(260), nullable=False),
    Column("printed_expiry", Date),
    Column("items", Integer, nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("mkt_c", Float),
    Column("observed_s", Float, nullable=False),
    Column("above_s", Float, nullable=False),
    Column("below_s", Float, nullable=False),
    Column("has_model", Boolean, nullable=False),
    # At ``as_of``; served shifted to the request's time (see cloud.lots.pages).
    Column("consumed_days", Float),
    Column("remaining_days", Float),
    Column("dynamic_expiry", UtcDateTime),
    Column("effective_expiry", UtcDateTime),
    # effective_expiry, or far future for a lot without any date: the FEFO sort key, never NULL.
    Column("fefo_key", UtcDateTime, nullable=False),
    Column("expiry_source", String(8)),
    # A never-seen lot without a printed date: its dynamic expiry is "now + nominal days".
    Column("floating", Boolean, nullable=False),
    Column("as_of", UtcDateTime, nullable=False),
    # Set while the evidence still changes with time alone (a reading still held in an open
    # stay): the catch-up job recomputes such rows; NULL = only new data can change it.
    Column("stable_from", UtcDateTime),
    Index("ix_lot_evidence_fefo", "sku", "fefo_key", "lot_code"),
    Index("ix_lot_evidence_expiry", "fefo_key"),
    Index(
        "ix_lot_evidence_volatile",
        "as_of",
        sqlite_where=text("stable_from IS NOT NULL"),
        postgresql_where=text("stable_from IS NOT NULL"),
    ),
)

# Items of a lot on hand per (site, location); location '' = none (never for present items).
lot_evidence_stock = Table(
    "lot_evidence_stock",
    metadata,
    Column("sku", ID, primary_key=True),
    Column("lot_code", ID, primary_key=True),
    Column("site_id", ID, primary_key=True),
    Column("location", ID, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Index("ix_lot_evidence_stock_site", "site_id", "sku", "lot_code"),
)

# What to recompute. One of: a lot (sku, lot_code); a product (sku only); an item (epc); a zone's
# temperature readings over [since, until] (site_id, zone). Due at ``due_at`` (an event's own time,
# so a future-dated one is folded in when the clock reaches it).
lot_evidence_marks = Table(
    "lot_evidence_marks",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("sku", ID),
    Column("lot_code", ID),
    Column("epc", EPC),
    Column("site_id", ID),
    Column("zone", ID),
    Column("since", UtcDateTime),
    Column("until", UtcDateTime),
    Column("due_at", UtcDateTime, nullable=False),
    Index("ix_lot_evidence_marks_due", "due_at", "id"),
)

# Items per (site, location, product), following every stock upsert (cloud.stock.zone_stock,
# revision 0015): which products a zone holds, without joining the site's on-hand items.
zone_products = Table(
    "zone_products",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("location", ID, primary_key=True),
    Column("sku", ID, primary_key=True),
    Column("items", Integer, nullable=False),
)

__all__ = ["lot_evidence", "lot_evidence_marks", "lot_evidence_stock", "zone_products"]
