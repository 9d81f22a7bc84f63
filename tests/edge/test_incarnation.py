"""The edge database's incarnation (edge.incarnation): created with it, kept, renewed on restore."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_outbox import health

from edge import incarnation
from edge.errors import OutboxError
from edge.outbox import Outbox
from edge.status import read_status
from edge.sync import batch_json
from shelfsense.cli import main as cli_main
from shelfsense.contract import parse_batch

NOW = datetime(2025, 1, 1, tzinfo=UTC)


async def test_new_database_gets_an_incarnation_that_stays(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    async with Outbox(path) as outbox:
        first = outbox.incarnation
        await outbox.append([health(1)])
    async with Outbox(path) as outbox:
        assert outbox.incarnation == first
    assert first is not None and len(first) == 32
    assert read_status(path)["incarnation"] == first
    # Batches carry it, and the contract accepts it.
    batch = parse_batch(
        batch_json("edge-1", [(1, json.dumps(health(1).model_dump(mode="json")))], first, created_at=NOW)
    )
    assert batch.incarnation == first
    async with Outbox(tmp_path / "other.db") as other:
        assert other.incarnation not in (None, first)


async def test_database_from_before_incarnations_keeps_the_original_stream(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    async with Outbox(path) as outbox:
        await outbox.append([health(1), health(2)])
    with sqlite3.connect(path) as conn:  # what a database of the previous release looks like
        conn.execute("DROP TABLE incarnation")
    async with Outbox(path) as outbox:
        assert outbox.incarnation is None
    assert "incarnation" not in json.loads(batch_json("edge-1", [], None, created_at=NOW))
    assert read_status(path)["incarnation"] is None


async def test_start_new_renumbers_what_is_pending_from_one(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    async with Outbox(path) as outbox:
        old = outbox.incarnation
        await outbox.append([health(n) for n in range(1, 6)])
        await outbox.ack(3)
    assert cli_main(["edge", "new-incarnation", "--db", str(path)]) == 0
    async with Outbox(path) as outbox:
        new = outbox.incarnation
    async with Outbox(path) as outbox:
        assert outbox.incarnation == new != old
        pending = await outbox.pending(10)
        assert [(e.seq, e.event) for e in pending] == [(1, health(4)), (2, health(5))]
        assert await outbox.progress() == (2, 0)
        assert await outbox.append([health(6)]) == [3]


def test_start_new_refuses_a_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="no edge database"):
        incarnation.start_new(tmp_path / "missing.db")
    sqlite3.connect(tmp_path / "other.db").close()
    with pytest.raises(OutboxError, match="cannot start a new incarnation"):
        incarnation.start_new(tmp_path / "other.db")
