"""Revision 0019 and PostgreSQL's partitions (cloud.retention.partitions): the migration converts a
database holding readings and movements without loss and back; partitions are created ahead by
the job (taking over the default partition's rows of their range) and dropped behind the horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from test_coldchain_migration import alembic_to
from test_retention import Site, post, reading

from cloud.admin import create_edge_async
from cloud.coldchain import sensor_tables as sensors_db
from cloud.core import db
from cloud.core.migrate import head_revision, upgrade_to_head
from cloud.retention import partitions
from cloud.retention.job import run_once, tick
from cloud.retention.rollup import horizon
from cloud.retention.tables import sensor_reading_rollups
from cloud.stock import tables as stock_db
from shelfsense.config import RetentionSettings

T = datetime(2025, 3, 1, tzinfo=UTC)
ORIGIN = {"site_id": "site-1", "edge_id": "edge-1"}


async def _rows(conn: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    r, m = sensors_db.sensor_readings, stock_db.stock_movements
    readings = (await conn.execute(select(r.c.id, r.c.seq, r.c.value, r.c.time).order_by(r.c.id))).all()
    moves = (await conn.execute(select(m.c.id, m.c.seq, m.c.epc, m.c.at).order_by(m.c.id))).all()
    return [tuple(x) for x in readings], [tuple(x) for x in moves]


async def test_migration_keeps_every_row_and_downgrades(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        async with db.write_transaction(engine) as conn:
            await conn.run_sync(alembic_to("0018"))
            # The tables' columns are the same at 0018: Core inserts store times as ingest does.
            for i in range(60):  # spread over ~4 months: several weekly and monthly partitions
                moment = T + timedelta(hours=47 * i)
                reading_row = {"seq": i, "sensor_id": "p1", "quantity": "temperature", "value": i / 2}
                reading_row |= {"unit": "degC", "time": moment, "zone": "cold-1", "flags": ""}
                await conn.execute(sensors_db.sensor_readings.insert(), ORIGIN | reading_row)
                move_row = {"seq": 1000 + i, "epc": f"E{i:04d}", "reason": "moved", "at": moment}
                await conn.execute(
                    stock_db.stock_movements.insert(), ORIGIN | move_row | {"to_location": "cold-1"}
                )
        async with engine.connect() as conn:
            before = await _rows(conn)
        assert await upgrade_to_head(engine) == head_revision()
        async with engine.connect() as conn:
            assert await _rows(conn) == before
            partitioned = [await partitions.is_partitioned(conn, p.table) for p in partitions.TABLES]
            postgres = engine.dialect.name == "postgresql"
            starts = await partitions.partition_starts(conn, partitions.READINGS) if postgres else []
        assert partitioned == [postgres, postgres]
        if postgres:  # a partition per week of the data, through four weeks past today
            assert starts[0] == partitions.period_start(T, "week")
            assert starts[-1] >= partitions.period_start(datetime.now(UTC) + timedelta(weeks=4), "week")
        # Ingest still inserts-or-ignores on the reading key, and ids continue the old sequence.
        site = Site(db_url)
        edge = (await create_edge_async(engine, "site-1", "edge-9"))[0]
        again = reading(T, 99.0, "p1", "cold-1", "temperature", [])  # same key as the first row
        fresh = reading(T + timedelta(seconds=1), 1.0, "p1", "cold-1", "temperature", [])
        assert await post(engine, site, edge, [again, fresh]) == 2
        async with engine.connect() as conn:
            after, _ = await _rows(conn)
        assert after[:-1] == before[0] and after[-1][0] > before[0][-1][0] and after[-1][2] == 1.0
        async with db.write_transaction(engine) as conn:
            await conn.run_sync(alembic_to("0018", down=True))
        async with engine.connect() as conn:
            assert await _rows(conn) == (after, before[1])
            assert not await partitions.is_partitioned(conn, "sensor_readings")
        assert await upgrade_to_head(engine) == head_revision()  # and up again
    finally:
        await engine.dispose()


async def _partition_of(conn: Any, sensor: str) -> str:
    query = text("SELECT tableoid::regclass::text FROM sensor_readings WHERE sensor_id = :s")
    return str(await conn.scalar(query, {"s": sensor}))


async def test_partitions_are_made_ahead_and_dropped_behind_the_horizon(pg_url: str) -> None:
    engine = db.create_engine(pg_url)
    now = datetime.now(UTC)
    week = partitions.period_start(now, "week")
    try:
        await upgrade_to_head(engine)
        site = Site(pg_url)
        edge = (await create_edge_async(engine, "site-1", "edge-1"))[0]
        events = [
            reading(now + timedelta(days=d, hours=h), 4.0 + h / 10, "p1", "cold-1", "temperature", [])
            for d in (0, 7, 14)
            for h in range(3)
        ]
        future = now + timedelta(weeks=9)
        events.append(reading(future, 3.0, "ahead", "cold-1", "temperature", []))  # no partition yet
        assert await post(engine, site, edge, events) == len(events)
        async with engine.connect() as conn:
            assert await _partition_of(conn, "ahead") == "sensor_readings_default"
            made = await partitions.partition_starts(conn, partitions.READINGS)
        assert made == [week + timedelta(weeks=k) for k in range(5)]  # the migration's: this week + 4

        settings = RetentionSettings(readings_days=14, partitions_ahead=2)
        later = now + timedelta(weeks=8)
        run = await run_once(engine, settings, now=later)
        ahead = [partitions.period_start(later, "week") + timedelta(weeks=k) for k in range(3)]
        assert run.created[:3] == [partitions.partition_name(partitions.READINGS, s) for s in ahead]
        assert run.dropped == [partitions.partition_name(partitions.READINGS, s) for s in made]
        assert run.rollup is not None and run.rollup.readings == 9
        async with engine.connect() as conn:
            assert await partitions.partition_starts(conn, partitions.READINGS) == ahead
            # The default partition's row moved into the partition made for its week.
            assert await _partition_of(conn, "ahead") == partitions.partition_name(
                partitions.READINGS, partitions.period_start(future, "week")
            )
            assert await conn.scalar(select(func.count()).select_from(sensors_db.sensor_readings)) == 1
            roll = sensor_reading_rollups
            assert await conn.scalar(select(func.sum(roll.c.count))) == 9
            months = await partitions.partition_starts(conn, partitions.MOVEMENTS)
            assert partitions.period_start(later, "month") in months  # the ledger's, never dropped
            assert months[0] == partitions.period_start(now, "month")
            assert await horizon(conn) is not None
    finally:
        await engine.dispose()


async def test_one_replica_runs_the_job_per_interval(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        await upgrade_to_head(engine)
        settings = RetentionSettings(interval_s=3600)
        now = datetime.now(UTC)
        assert await tick(engine, settings, now) is None  # registered: first run one interval later
        due = now + timedelta(seconds=3601)
        runs = [await tick(engine, settings, due), await tick(engine, settings, due)]
        assert runs[0] is not None and runs[1] is None
        async with engine.connect() as conn:
            assert await horizon(conn) is not None  # the run moved it (nothing to fold)
    finally:
        await engine.dispose()
