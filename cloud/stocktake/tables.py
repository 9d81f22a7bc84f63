"""Tables of continuous stocktake: runs, locations, discrepancies and streaks. On the shared metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    text,
)

from cloud.core.db import EPC, ID, UtcDateTime, metadata

stocktake_runs = Table(
    "stocktake_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("runner", String(200), nullable=False),
    Column("missing_after_windows", Integer, nullable=False),
    Column("missing", Integer, nullable=False, default=0),
    Column("misplaced", Integer, nullable=False, default=0),
    Column("unexpected", Integer, nullable=False, default=0),
    Column("unknown", Integer, nullable=False, default=0),
    Column("new_discrepancies", Integer, nullable=False, default=0),
    Column("resolved_discrepancies", Integer, nullable=False, default=0),
    Index("ix_stocktake_runs_site", "site_id", "id"),
)

stocktake_locations = Table(
    "stocktake_locations",
    metadata,
    Column("run_id", BigInteger, ForeignKey("stocktake_runs.id"), primary_key=True),
    Column("location", ID, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("book_count", Integer, nullable=False),
    Column("seen_count", Integer, nullable=False),
    Column("observed_count", Integer, nullable=False),
    Column("read_rate", Float),
    Column("baseline_read_rate", Float),
    Column("confidence", Float),
    Index("ix_stocktake_locations_location", "location", "run_id"),
)

# One row per discrepancy episode: opened by the run that first sees it, kept (last_run_id) while
# later runs still see it, closed as resolved / accepted / dismissed.
stocktake_discrepancies = Table(
    "stocktake_discrepancies",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("epc", EPC, nullable=False),
    Column("location", ID, nullable=False),
    Column("book_location", ID),
    Column("status", String(16), nullable=False),
    Column("unseen_windows", Integer, nullable=False, default=0),
    Column("first_run_id", BigInteger, ForeignKey("stocktake_runs.id"), nullable=False),
    Column("last_run_id", BigInteger, ForeignKey("stocktake_runs.id"), nullable=False),
    Column("resolved_run_id", BigInteger, ForeignKey("stocktake_runs.id")),
    Column("decided_by", ID),
    Column("decided_at", UtcDateTime),
    Index(
        "ux_stocktake_discrepancies_live",
        "site_id",
        "kind",
        "epc",
        "location",
        unique=True,
        sqlite_where=text("status IN ('open', 'dismissed')"),
        postgresql_where=text("status IN ('open', 'dismissed')"),
    ),
    Index("ix_stocktake_discrepancies_status", "site_id", "status", "location"),
)

# Unseen covered windows per book item (only nonzero counters are stored).
stocktake_streaks = Table(
    "stocktake_streaks",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("epc", EPC, primary_key=True),
    Column("unseen_windows", Integer, nullable=False),
)

__all__ = ["stocktake_discrepancies", "stocktake_locations", "stocktake_runs", "stocktake_streaks"]
