"""Tables of the cold-chain feature (revision 0004), on the shared metadata.

Imported at the bottom of :mod:`cloud.core.db`. The lifecycle columns of ``alerts`` itself
(acknowledgement, resolution, escalation) live with that core table in :mod:`cloud.core.db`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, String, Table, Text

from cloud.core.db import ID, UtcDateTime, metadata

# Excursion evaluator state per (site, zone, sensor, quantity), as the JSON of
# ExcursionEvaluator.snapshot(): ingest restores it, feeds the batch's readings, stores it back.
# ``last_time`` mirrors the state's last reading so the gap tick can skip fresh sensors cheaply.
coldchain_sensor_state = Table(
    "coldchain_sensor_state",
    metadata,
    Column("site_id", ID, primary_key=True),
    Column("zone", ID, primary_key=True),
    Column("sensor_id", ID, primary_key=True),
    Column("quantity", String(16), primary_key=True),
    Column("state", Text, nullable=False),
    Column("last_time", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Every excursion event the evaluators produced (raised / cleared / door_open info): the evidence
# behind each alert, and what a lot report lists.
excursion_events = Table(
    "excursion_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("site_id", ID, nullable=False),
    Column("zone", ID, nullable=False),
    Column("sensor_id", ID, nullable=False),
    Column("alert_id", BigInteger),
    Column("kind", String(16), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("state", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("value", Float),
    Column("limit", Float),
    Column("peak", Float),
    Column("duration_s", Float, nullable=False),
    Index("ix_excursion_events_zone", "site_id", "zone", "at"),
    Index("ix_excursion_events_alert", "alert_id"),
)

# One row per channel per notification (raised / acknowledged / escalated / resolved).
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("delivery_id", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("channel", ID, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status", Integer),
    Column("error", Text),
    Column("elapsed_ms", Float, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_alert_deliveries_alert", "alert_id", "id"),
)

# Alert-storm control per (channel, site, zone) (revision 0017, cloud.notify.storm): the
# current hour's window and messages sent in it, and what is held for the next digest.
alert_storm = Table(
    "alert_storm",
    metadata,
    Column("channel", ID, primary_key=True),
    Column("site_id", ID, primary_key=True),
    Column("zone", ID, primary_key=True),
    Column("window_start", UtcDateTime, nullable=False),
    Column("sent", Integer, nullable=False),
    Column("held", Integer, nullable=False),  # messages held since held_since
    Column("held_raised", Integer, nullable=False),  # of which new alerts (excursions)
    Column("held_since", UtcDateTime),
    Column("held_quiet", Boolean, nullable=False),  # held (also) by quiet hours / maintenance
)

__all__ = ["alert_deliveries", "alert_storm", "coldchain_sensor_state", "excursion_events", "metadata"]
