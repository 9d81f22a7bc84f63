"""sensor readings indexed by zone and time

Revision ID: 0008
Revises: 0007

The alert window, lot history and EPCIS queries select readings by zone and time; the index on
``site_id`` alone served none of them (they scanned a site's readings) and cost an insert per
reading. The new index is partial: readings without a zone (no query asks for them by zone) skip it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_ZONE = sa.text("zone IS NOT NULL")


def upgrade() -> None:
    # IF (NOT) EXISTS: a database made by an older create_all and adopted (see cloud.core.migrate)
    # may already have the new index and not the old one.
    op.drop_index("ix_sensor_readings_site", table_name="sensor_readings", if_exists=True)
    op.create_index(
        "ix_sensor_readings_zone_time",
        "sensor_readings",
        ["zone", "time"],
        unique=False,
        if_not_exists=True,
        sqlite_where=_HAS_ZONE,
        postgresql_where=_HAS_ZONE,
    )


def downgrade() -> None:
    op.drop_index("ix_sensor_readings_zone_time", table_name="sensor_readings")
    op.create_index("ix_sensor_readings_site", "sensor_readings", ["site_id"], unique=False)
