"""Tables of edge sync: edges, their sequence streams, the de-duplication log, device health and
edge alarms. On the shared metadata (:mod:`cloud.tables`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    String,
    Table,
    Text,
    false,
    text,
)

from cloud.core.db import ID, UtcDateTime, event_columns, metadata

edges = Table(
    "edges",
    metadata,
    Column("edge_id", ID, primary_key=True),
    Column("site_id", ID, ForeignKey("sites.site_id"), nullable=False),
    Column("acked_through", BigInteger, nullable=False, default=0),
    Column("events_received", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("batches", BigInteger, nullable=False, default=0),
    # Events stored for audit but not applied: their time was outside the plausibility window
    # (revision 0010, cloud.ingest.plausibility).
    Column("events_implausible", BigInteger, nullable=False, default=0, server_default="0"),
    Column("last_seen", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    # The current sequence stream (revision 0009): the edge database's incarnation (None: an edge
    # that sends none), and where its sequence numbers start in ``events.seq`` (see ingest).
    Column("incarnation", String(64)),
    Column("seq_offset", BigInteger, nullable=False, default=0, server_default="0"),
    Column("incarnation_started_at", UtcDateTime),
    # The edge reports a full disk in its batches (edge.diskfull); since when, as the cloud saw it.
    Column("disk_full", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("disk_full_since", UtcDateTime),
)

# Every incarnation an edge has sent in, with its offset; only the edge's current one is accepted.
edge_incarnations = Table(
    "edge_incarnations",
    metadata,
    Column("edge_id", ID, ForeignKey("edges.edge_id"), primary_key=True),
    Column("incarnation", String(64), primary_key=True),
    Column("seq_offset", BigInteger, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
)

# The de-duplication log: one row per (edge, seq) ever accepted.
events = Table(
    "events",
    metadata,
    Column("edge_id", ID, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("implausible", Boolean, nullable=False, default=False, server_default=false()),  # rev. 0010
)

# Latest health per (edge, device).
device_health = Table(
    "device_health",
    metadata,
    Column("edge_id", ID, primary_key=True),
    Column("device_id", ID, primary_key=True),
    Column("connected", Boolean, nullable=False),
    Column("last_frame_at", UtcDateTime),
    Column("frames_ok", BigInteger, nullable=False),
    Column("frames_bad", BigInteger, nullable=False),
    Column("reconnects", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

local_alarms = Table(
    "local_alarms",
    metadata,
    *event_columns(),
    Column("zone", ID, nullable=False),
    Column("sensor_id", ID, nullable=False),
    Column("rule", String(32), nullable=False),
    Column("state", String(8), nullable=False),
    Column("value", Float, nullable=False),
    Column("limit", Float, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

__all__ = ["device_health", "edge_incarnations", "edges", "events", "local_alarms"]
