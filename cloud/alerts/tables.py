"""The alerts table: one row per alert, its lifecycle and escalation. On the shared metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from cloud.core.db import ID, UtcDateTime, metadata

# Cold-chain alerts. At most one active (open or acknowledged) alert per (site, zone, rule):
# enforced by a partial unique index so two concurrent batches cannot both open one.
# Lifecycle columns (kind .. escalated_at) came with revision 0004 (cloud.coldchain).
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("zone", ID, nullable=False),
    Column("rule", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("source", String(8), nullable=False),
    Column("sensor_id", ID),
    Column("limit", Float),
    Column("peak_value", Float, nullable=False),
    Column("last_value", Float, nullable=False),
    Column("first_breach_at", UtcDateTime, nullable=False),
    Column("last_breach_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    Column("kind", String(16), nullable=False, default="single_event", server_default="single_event"),
    Column("severity", String(8), nullable=False, default="warning", server_default="warning"),
    Column("limit_source", Text),  # lists SKUs: unbounded (revision 0010)
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_by", ID),
    Column("ack_comment", Text),
    Column("resolved_by", ID),
    Column("resolve_reason", Text),
    Column("escalation_level", Integer, nullable=False, default=0, server_default="0"),
    Column("notified_at", UtcDateTime),
    Index(
        "ux_alerts_one_open",
        "site_id",
        "zone",
        "rule",
        unique=True,
        sqlite_where=text("status IN ('open', 'acknowledged')"),
        postgresql_where=text("status IN ('open', 'acknowledged')"),
    ),
    Index("ix_alerts_status", "status", "site_id"),
)

__all__ = ["alerts"]
