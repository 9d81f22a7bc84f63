"""Captured EPCIS events. On the shared metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    String,
    Table,
)

from cloud.core.db import ID, UtcDateTime, metadata

# EPCIS events captured from partners (revision 0012): one row per event, keyed by its eventID (or
# a hash of the event when it has none) so a partner may capture the same document twice. ``id``
# is the ``seq`` of the rows it projected (edge_id ``epcis``).
epcis_events = Table(
    "epcis_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_key", String(255), nullable=False, unique=True),
    Column("site_id", ID, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("captured_at", UtcDateTime, nullable=False),
    Column("captured_by", String(128), nullable=False),
)

__all__ = ["epcis_events"]
