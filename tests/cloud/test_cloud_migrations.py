"""Alembic migrations: head equals ``metadata``, upgrades are idempotent and safe to race."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from cloud import tables as all_tables
from cloud.core import db
from cloud.core.migrate import current_revision, head_revision, migrate, upgrade_to_head
from cloud.retention.partitions import is_partition
from cloud.users import tables as users_db
from shelfsense.cli import main as cli_main


def _not_a_partition(name: str | None, type_: str, _parent: object) -> bool:
    return not (type_ == "table" and name is not None and is_partition(name))


def _diff(connection: Connection) -> list[object]:
    opts = {"compare_type": True, "include_name": _not_a_partition}
    context = MigrationContext.configure(connection, opts=opts)
    return list(compare_metadata(context, all_tables.metadata))


async def test_fresh_database_at_head_equals_metadata(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        assert await upgrade_to_head(engine) == head_revision()
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            tables = {name for name in names if not is_partition(name)}  # PostgreSQL's (cloud.retention)
            differences = await conn.run_sync(_diff)
            revision = await conn.run_sync(current_revision)
        assert tables == set(all_tables.metadata.tables) | {"alembic_version"}
        assert differences == []  # columns, types, indexes, constraints
        assert revision == head_revision()
        # Running again is a no-op.
        assert await upgrade_to_head(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_do_not_race(db_url: str) -> None:
    """Several replicas starting at once: each upgrades or waits, none fails."""
    engines = [db.create_engine(db_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(upgrade_to_head(e) for e in engines))
        assert results == [head_revision()] * 3
        async with engines[0].connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [r[0] for r in rows] == [head_revision()]
    finally:
        for engine in engines:
            await engine.dispose()


async def test_database_from_before_migrations_is_adopted(db_url: str) -> None:
    """A database made by the old ``create_all`` (no alembic_version) is stamped, data kept."""
    engine = db.create_engine(db_url)
    try:
        initial = [t for name, t in all_tables.metadata.tables.items() if name in _INITIAL_TABLES]
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: all_tables.metadata.create_all(c, tables=initial))
            await conn.execute(users_db.sites.insert().values(site_id="old-site", created_at=db.utcnow()))
        assert await upgrade_to_head(engine) == head_revision()
        async with engine.connect() as conn:
            assert (
                await conn.scalar(users_db.sites.select().with_only_columns(users_db.sites.c.site_id))
                == "old-site"
            )
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


def test_cli_migrate(db_url: str, capsys: object) -> None:
    plain = db_url.replace("+aiosqlite", "").replace("+asyncpg", "")
    assert cli_main(["cloud", "migrate", "--db", plain]) == 0
    assert migrate(db_url) == head_revision()


_INITIAL_TABLES = {
    "sites",
    "edges",
    "users",
    "tokens",
    "events",
    "tag_observations",
    "portal_passages",
    "stock_movements",
    "stock_items",
    "sensor_readings",
    "sensors",
    "device_health",
    "local_alarms",
    "alerts",
}


async def test_zone_queries_use_the_partial_zone_time_index(tmp_path: object) -> None:
    """The alert window and lot history queries (zone + time) are served by 0008's index; on
    SQLite a partial index is only used when the query implies its WHERE, which ``zone = ?`` does."""
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/plan.db")
    try:
        await upgrade_to_head(engine)
        async with engine.connect() as conn:
            plans = []
            for where in ("site_id = 's' AND zone = 'z'", "zone = 'z' AND quantity = 'temperature'"):
                sql = f"EXPLAIN QUERY PLAN SELECT value FROM sensor_readings WHERE {where} AND time >= '2026'"
                plans.append(" ".join(str(row[-1]) for row in await conn.execute(text(sql))))
        assert all("ix_sensor_readings_zone_time" in plan for plan in plans), plans
    finally:
        await engine.dispose()
