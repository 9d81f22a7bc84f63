"""Revision 0004 on a database holding alerts from before it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError

from cloud.alerts import tables as alerts_db
from cloud.core import db
from cloud.core.migrate import alembic_config, head_revision, upgrade_to_head

T = datetime(2025, 1, 1, tzinfo=UTC)
OLD_ALERT = (
    'INSERT INTO alerts (site_id, zone, rule, status, source, sensor_id, "limit", peak_value, '
    "last_value, first_breach_at, last_breach_at) VALUES "
    "('s', 'z', 'max_temperature', 'open', 'cloud', 'p', 8.0, 9.0, 9.0, :t, :t)"
)


def alembic_to(revision: str, down: bool = False) -> object:
    """For ``conn.run_sync``: migrate up (or down) to ``revision``."""

    def run(conn: Connection) -> None:
        config = alembic_config(conn)
        (command.downgrade if down else command.upgrade)(config, revision)

    return run


async def test_existing_alerts_gain_the_lifecycle_and_one_active_alert_holds(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        async with db.write_transaction(engine) as conn:
            await conn.run_sync(alembic_to("0003"))
            await conn.execute(text(OLD_ALERT), {"t": T.replace(tzinfo=None)})
        assert await upgrade_to_head(engine) == head_revision()
        async with engine.connect() as conn:
            row = (await conn.execute(select(alerts_db.alerts))).mappings().one()
        assert (row["status"], row["kind"], row["severity"], row["escalation_level"]) == (
            "open",
            "single_event",
            "warning",
            0,
        )
        async with engine.begin() as conn:
            await conn.execute(
                alerts_db.alerts.update().values(status="acknowledged", acknowledged_by="otto")
            )
        duplicate = {k: v for k, v in row.items() if k not in ("id", "status")}
        with pytest.raises(IntegrityError):  # acknowledged is still active: no second alert
            async with engine.begin() as conn:
                await conn.execute(alerts_db.alerts.insert().values(**duplicate, status="open"))
        async with engine.begin() as conn:
            await conn.execute(alerts_db.alerts.update().values(status="resolved"))
            await conn.execute(alerts_db.alerts.insert().values(**duplicate, status="open"))
        # And back down: acknowledged alerts become open, the new tables go.
        async with engine.begin() as conn:
            await conn.execute(
                alerts_db.alerts.update()
                .where(alerts_db.alerts.c.status == "open")
                .values(status="acknowledged")
            )
        async with db.write_transaction(engine) as conn:
            await conn.run_sync(alembic_to("0003", down=True))
            statuses = sorted((await conn.execute(text("SELECT status FROM alerts"))).scalars())
        assert statuses == ["open", "resolved"]
    finally:
        await engine.dispose()
