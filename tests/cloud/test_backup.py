"""``shelfsense cloud backup|restore`` on SQLite (online backup API) and PostgreSQL (pg_dump /
pg_restore): a backup taken while the cloud runs restores into a fresh database with every table
identical (stock, alerts, lots, edges, tokens), the restored cloud serves the same answers, and an
edge keeps syncing against it: the next sequence is accepted once, a resent one is not applied again.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from conftest import Cloud, batch, reading
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from test_lots_api import build

from cloud.coldchain import sensor_tables as sensors_db
from cloud.main import create_app
from shelfsense.cli import main as cli_main
from shelfsense.config import CloudSettings, Settings

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


async def _pg(url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def fresh_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database of the same engine as ``db_url``, for the restore."""
    if db_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'cloud.db'}"
        return
    admin: str = request.getfixturevalue("pg_admin_url")
    name = f"shelfsense_r_{secrets.token_hex(6)}"
    asyncio.run(_pg(admin, f'CREATE DATABASE "{name}"'))
    parts = urlsplit(admin)
    yield urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: two databases with equal dumps hold the same data.

    Except the lot read model (``lot_evidence*``): derived rows and their work queue, which the
    catch-up job of either app may process at any moment; its answers are compared through
    ``/api/v1/lots`` instead."""
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        out: dict[str, list[tuple[Any, ...]]] = {}
        for name in sorted(n for n in names if not n.startswith("lot_evidence")):
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def _stable(lots: dict[str, Any]) -> list[dict[str, Any]]:
    """The lot list without what moves with the wall clock (remaining shelf life)."""
    moving = {"remaining_shelf_life_days", "consumed_shelf_life_days"}
    return [{k: v for k, v in lot.items() if k not in moving} for lot in lots["items"]]


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(cli_main, list(argv))


async def test_backup_restore_round_trip_and_edges_keep_syncing(
    cloud: Cloud, db_url: str, fresh_url: str, tmp_path: Path
) -> None:
    await build(cloud, T0, {"WARM": "2025-01-11", "COLD": "2025-01-11", "GONE": "2025-01-05"})
    # edge-2 reports cold-1 above its 8 °C limit: an alert.
    hot = [(seq, reading(3600 * 30 + 60 * seq, 12.0, sensor="probe-2")) for seq in (1, 2, 3)]
    assert (await cloud.post(batch("edge-2", hot), edge="edge-2")).json()["acked_through"] == 3
    lots_before = _stable(await cloud.get_ok("/api/v1/lots"))
    before = await _dump(cloud.engine)
    assert before["alerts"] and before["lots"] and before["items"] and before["sensor_readings"]

    backup_dir = tmp_path / "backup"
    assert await _cli("cloud", "backup", str(backup_dir), "--db", db_url) == 0  # online: the app runs
    assert await _cli("cloud", "backup", str(backup_dir), "--db", db_url) == 1  # never over a backup
    assert await _cli("cloud", "restore", str(backup_dir), "--db", fresh_url) == 0
    assert await _cli("cloud", "restore", str(backup_dir), "--db", fresh_url) == 1  # not into live data

    # max_event_age_s=None: the edge goes on with events dated 2025, like the rest of this test.
    app = create_app(Settings(cloud=CloudSettings(db_url=fresh_url, max_event_age_s=None)))
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        assert await _dump(engine) == before
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://restored.test") as client:
            restored = Cloud(app=app, client=client, engine=engine, edge_tokens=cloud.edge_tokens)
            restored.viewer = cloud.viewer  # user tokens were restored with the users
            assert _stable(await restored.get_ok("/api/v1/lots")) == lots_before
            # The edge goes on: seq 3 again (its ack was lost) and the new seq 4.
            again = [hot[-1], (4, reading(3600 * 30 + 600, 5.0, sensor="probe-2"))]
            answer = await restored.post(batch("edge-2", again), edge="edge-2")
            assert answer.status_code == 200 and answer.json()["acked_through"] == 4
        async with engine.connect() as conn:
            readings = sensors_db.sensor_readings
            query = select(readings.c.value).where(readings.c.sensor_id == "probe-2")
            rows = (await conn.execute(query)).all()
    assert sorted(v for (v,) in rows) == [5.0, 12.0, 12.0, 12.0]  # seq 3 once, seq 4 once


def test_restore_refuses_a_missing_backup_and_another_engine(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert cli_main(["cloud", "backup", str(tmp_path / "b"), "--db", f"sqlite:///{missing}"]) == 1
    assert not missing.exists()  # a wrong path is an error, not a new empty database
    assert cli_main(["cloud", "restore", str(tmp_path / "nothing"), "--db", "sqlite:///x.db"]) == 1
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "manifest.json").write_text('{"engine": "postgresql", "files": ["cloud.pgdump"]}')
    target = tmp_path / "target.db"
    assert cli_main(["cloud", "restore", str(tmp_path / "pg"), "--db", f"sqlite:///{target}"]) == 1
    assert not target.exists()


def test_edge_backup_copies_the_live_outbox(tmp_path: Path) -> None:
    import sqlite3

    live = tmp_path / "edge.db"
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, body TEXT)")
    writer.executemany("INSERT INTO outbox VALUES (?, ?)", [(i, f"e{i}") for i in range(1, 501)])
    writer.commit()  # committed to the WAL, not yet checkpointed into the main file
    try:
        assert cli_main(["edge", "backup", str(tmp_path / "bk"), "--db", str(live)]) == 0
    finally:
        writer.close()
    copy = sqlite3.connect(tmp_path / "bk" / "edge.db")
    try:
        assert copy.execute("SELECT count(*), max(seq) FROM outbox").fetchone() == (500, 500)
    finally:
        copy.close()
    assert cli_main(["edge", "backup", str(tmp_path / "bk2"), "--db", str(tmp_path / "none.db")]) == 1
