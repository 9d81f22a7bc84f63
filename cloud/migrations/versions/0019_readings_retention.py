"""readings retention: roll-up table, retention horizon; PostgreSQL: partitioned readings and movements

Revision ID: 0019
Revises: 0018

Both engines: ``sensor_reading_rollups``, ``retention_state`` and an index on readings' device
time (the retention job walks it bucket by bucket). PostgreSQL only: ``sensor_readings`` becomes
range-partitioned by device time (weekly) and ``stock_movements`` by business time (monthly), see
:mod:`cloud.retention.partitions`. Each is converted in place, rows preserved: the old table is
renamed, a partitioned one created with the same columns and defaults (the same id sequence),
partitions made for the stored data's range plus four periods ahead and a default one, the rows
copied, the indexes re-created on the parent and the old table dropped. A partitioned table's
unique keys must hold its partition key: the primary key becomes (id, time) / (id, at); the
reading key (site, sensor, quantity, time) already has it, so ingest's insert-or-ignore is
unchanged. SQLite keeps plain tables. The downgrade converts back the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD = 4
# (table, partition column, period, index DDL at 0019 — "{t}" is the table)
TABLES = (
    (
        "sensor_readings",
        "time",
        "week",
        (
            'CREATE INDEX ix_sensor_readings_sensor_time ON "{t}" (sensor_id, time)',
            'CREATE INDEX ix_sensor_readings_time ON "{t}" (time)',
            'CREATE UNIQUE INDEX ux_sensor_readings_key ON "{t}" (site_id, sensor_id, quantity, time)',
            'CREATE INDEX ix_sensor_readings_zone_time ON "{t}" (zone, time) WHERE zone IS NOT NULL',
        ),
    ),
    (
        "stock_movements",
        "at",
        "month",
        (
            'CREATE INDEX ix_stock_movements_epc ON "{t}" (epc, at)',
            'CREATE INDEX ix_stock_movements_site_at ON "{t}" (site_id, at)',
            'CREATE INDEX ix_stock_movements_at ON "{t}" (at, id)',
        ),
    ),
)


def _start(moment: datetime, period: str) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)


def _next(start: date, period: str) -> date:
    if period == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def _bound(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def _sequence(table: str) -> str:
    name = op.get_bind().scalar(sa.text(f"SELECT pg_get_serial_sequence('{table}', 'id')"))
    assert name, f"{table}.id has no sequence"
    return str(name)


def _drop_keys(renamed: str, table: str, ddl: Sequence[str]) -> None:
    """Free the index and primary-key names (``table``'s) held by the ``renamed`` old table."""
    for statement in ddl:
        name = statement.split(" ON ")[0].split()[-1]
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f'ALTER TABLE "{renamed}" DROP CONSTRAINT IF EXISTS "{table}_pkey"')


def _partition(table: str, column: str, period: str, ddl: Sequence[str]) -> None:
    bind = op.get_bind()
    old = f"{table}_unpartitioned"
    sequence = _sequence(table)
    low, high = bind.execute(sa.text(f'SELECT min("{column}"), max("{column}") FROM "{table}"')).one()
    now = datetime.now(UTC)
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    _drop_keys(old, table, ddl)
    op.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS) PARTITION BY RANGE ("{column}")')
    op.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY (id, "{column}")')
    op.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT')
    start = _start(min(low or now, now), period)
    last = _start(max(high or now, now), period)
    for _ in range(AHEAD):
        last = _next(last, period)
    while start <= last:
        op.execute(
            f'CREATE TABLE "{table}_p{start:%Y%m%d}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ('{_bound(start)}') TO ('{_bound(_next(start, period))}')"
        )
        start = _next(start, period)
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    op.execute(f'DROP TABLE "{old}"')
    for statement in ddl:
        op.execute(statement.format(t=table))
    op.execute(f'ALTER SEQUENCE {sequence} OWNED BY "{table}".id')


def _unpartition(table: str, ddl: Sequence[str]) -> None:
    old = f"{table}_partitioned"
    sequence = _sequence(table)
    op.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    op.execute(f'ALTER TABLE "{old}" DROP CONSTRAINT "{table}_pkey"')
    op.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS)')
    op.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY (id)')
    op.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    op.execute(f'DROP TABLE "{old}" CASCADE')  # its partitions and partitioned indexes with it
    for statement in ddl:
        if "ix_sensor_readings_time" not in statement:  # added by this revision
            op.execute(statement.format(t=table))
    op.execute(f'ALTER SEQUENCE {sequence} OWNED BY "{table}".id')


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("sensor_reading_rollups"):  # else adopted from metadata.create_all
        op.create_table(
            "sensor_reading_rollups",
            sa.Column("site_id", sa.String(length=128), nullable=False),
            sa.Column("sensor_id", sa.String(length=128), nullable=False),
            sa.Column("quantity", sa.String(length=16), nullable=False),
            sa.Column("zone", sa.String(length=128), nullable=False),
            sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
            sa.Column("unit", sa.String(length=8), nullable=False),
            sa.Column("count", sa.BigInteger(), nullable=False),
            sa.Column("min_value", sa.Float(), nullable=False),
            sa.Column("max_value", sa.Float(), nullable=False),
            sa.Column("mean_value", sa.Float(), nullable=False),
            sa.Column("first_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_time", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("site_id", "sensor_id", "quantity", "zone", "bucket"),
        )
        op.create_index("ix_sensor_reading_rollups_zone", "sensor_reading_rollups", ["zone", "bucket"])
        op.create_index("ix_sensor_reading_rollups_sensor", "sensor_reading_rollups", ["sensor_id", "bucket"])
        op.create_table(
            "retention_state",
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("horizon", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if op.get_bind().dialect.name != "postgresql":
        op.create_index("ix_sensor_readings_time", "sensor_readings", ["time"], if_not_exists=True)
        return
    for table, column, period, ddl in TABLES:
        _partition(table, column, period, ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, _column, _period, ddl in TABLES:
            _unpartition(table, ddl)
    else:
        op.drop_index("ix_sensor_readings_time", table_name="sensor_readings")
    op.drop_table("retention_state")
    op.drop_index("ix_sensor_reading_rollups_sensor", table_name="sensor_reading_rollups")
    op.drop_index("ix_sensor_reading_rollups_zone", table_name="sensor_reading_rollups")
    op.drop_table("sensor_reading_rollups")
