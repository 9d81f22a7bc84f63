"""cold chain (alerts lifecycle, excursions, notifications)

Revision ID: 0004
Revises: 0003

Alert lifecycle columns on ``alerts`` (acknowledged, resolved by whom and why, escalation), the
one-active-alert index widened to ``open`` + ``acknowledged``, the excursion evaluator state per
sensor, the excursion event log and the delivery log (tables in cloud/coldchain/tables.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(length=128)
_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ONE_OPEN_OLD = sa.text("status = 'open'")
_ONE_OPEN_NEW = sa.text("status IN ('open', 'acknowledged')")
# Fill existing rows and stay (the model declares them too): one table rebuild on SQLite.
_SERVER_DEFAULTS = {"kind": "single_event", "severity": "warning", "escalation_level": "0"}


def _alerts_have_lifecycle() -> bool:
    """True for a database adopted from ``metadata.create_all`` of this code (see cloud.core.migrate):
    its ``alerts`` already has the 0004 columns and index, so there is nothing to alter."""
    return "kind" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("alerts")}


def upgrade() -> None:
    if not _alerts_have_lifecycle():
        _upgrade_alerts()
    _create_tables()


def _upgrade_alerts() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ux_alerts_one_open", sqlite_where=_ONE_OPEN_OLD, postgresql_where=_ONE_OPEN_OLD)
        batch_op.alter_column(
            "status", existing_type=sa.String(length=8), type_=sa.String(length=16), existing_nullable=False
        )
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="single_event")
        )
        batch_op.add_column(
            sa.Column("severity", sa.String(length=8), nullable=False, server_default="warning")
        )
        batch_op.add_column(sa.Column("limit_source", sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", _ID, nullable=True))
        batch_op.add_column(sa.Column("ack_comment", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", _ID, nullable=True))
        batch_op.add_column(sa.Column("resolve_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "escalation_level",
                sa.Integer(),
                nullable=False,
                server_default=_SERVER_DEFAULTS["escalation_level"],
            )
        )
        batch_op.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ux_alerts_one_open",
            ["site_id", "zone", "rule"],
            unique=True,
            sqlite_where=_ONE_OPEN_NEW,
            postgresql_where=_ONE_OPEN_NEW,
        )


def _create_tables() -> None:
    op.create_table(
        "coldchain_sensor_state",
        sa.Column("site_id", _ID, nullable=False),
        sa.Column("zone", _ID, nullable=False),
        sa.Column("sensor_id", _ID, nullable=False),
        sa.Column("quantity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("last_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "zone", "sensor_id", "quantity"),
    )
    op.create_table(
        "excursion_events",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("site_id", _ID, nullable=False),
        sa.Column("zone", _ID, nullable=False),
        sa.Column("sensor_id", _ID, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("limit", sa.Float(), nullable=True),
        sa.Column("peak", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("excursion_events", schema=None) as batch_op:
        batch_op.create_index("ix_excursion_events_zone", ["site_id", "zone", "at"], unique=False)
        batch_op.create_index("ix_excursion_events_alert", ["alert_id"], unique=False)
    op.create_table(
        "alert_deliveries",
        sa.Column("id", _PK, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("channel", _ID, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("elapsed_ms", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_alert_deliveries_alert", ["alert_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_deliveries_alert")
    op.drop_table("alert_deliveries")
    with op.batch_alter_table("excursion_events", schema=None) as batch_op:
        batch_op.drop_index("ix_excursion_events_alert")
        batch_op.drop_index("ix_excursion_events_zone")
    op.drop_table("excursion_events")
    op.drop_table("coldchain_sensor_state")
    # Acknowledged alerts become open again: the old schema knows only open / resolved.
    op.execute("UPDATE alerts SET status = 'open' WHERE status = 'acknowledged'")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ux_alerts_one_open", sqlite_where=_ONE_OPEN_NEW, postgresql_where=_ONE_OPEN_NEW)
        for name in (
            "notified_at",
            "escalation_level",
            "resolve_reason",
            "resolved_by",
            "ack_comment",
            "acknowledged_by",
            "acknowledged_at",
            "limit_source",
            "severity",
            "kind",
        ):
            batch_op.drop_column(name)
        batch_op.alter_column(
            "status", existing_type=sa.String(length=16), type_=sa.String(length=8), existing_nullable=False
        )
        batch_op.create_index(
            "ux_alerts_one_open",
            ["site_id", "zone", "rule"],
            unique=True,
            sqlite_where=_ONE_OPEN_OLD,
            postgresql_where=_ONE_OPEN_OLD,
        )
