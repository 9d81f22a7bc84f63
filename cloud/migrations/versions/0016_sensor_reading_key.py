"""one sensor reading per (site, sensor, quantity, device time)

Revision ID: 0016
Revises: 0015

Only ``(edge, seq)`` de-duplicated readings; a wiped edge or a publisher's re-send under a new
sequence number stored the same reading twice (and weighed it twice in MKT and alert windows).
Existing duplicates are removed (the first stored is kept), then a unique index makes ingest's
insert-or-ignore leave further ones out (counted: ``shelfsense_reading_duplicates_total``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM sensor_readings WHERE id NOT IN "
        "(SELECT MIN(id) FROM sensor_readings GROUP BY site_id, sensor_id, quantity, time)"
    )
    op.create_index(
        "ux_sensor_readings_key",
        "sensor_readings",
        ["site_id", "sensor_id", "quantity", "time"],
        unique=True,
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ux_sensor_readings_key", table_name="sensor_readings")
