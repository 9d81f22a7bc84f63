"""Outbox: gap-free sequence numbers across restarts, one transaction per call, ack semantics."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.errors import EdgeStatusUnavailable, OutboxError
from edge.outbox import Outbox, OutboxWriter
from edge.status import read_status
from shelfsense.contract import DeviceHealth, Event, LocalAlarm, SensorReading, StockMovement

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def health(n: int) -> DeviceHealth:
    return DeviceHealth(device_id=f"dev-{n}", connected=True, at=T0 + timedelta(seconds=n))


def reading(value: float, seconds: float = 0, sensor: str = "probe-1") -> SensorReading:
    return SensorReading(
        sensor_id=sensor,
        quantity="temperature",
        value=value,
        unit="degC",
        time=T0 + timedelta(seconds=seconds),
        zone="cold-room",
    )


def move(epc: str, to: str | None, frm: str | None = None) -> StockMovement:
    return StockMovement(epc=epc, from_location=frm, to_location=to, at=T0)


@pytest.fixture
async def outbox(tmp_path: Path):
    box = Outbox(tmp_path / "edge.db")
    await box.open()
    yield box
    await box.close()


async def test_sequence_has_no_holes_across_reopen_even_after_full_ack(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    async with Outbox(path) as box:
        assert await box.append([health(1), health(2), health(3)]) == [1, 2, 3]
        await box.ack(3)  # every row deleted: MAX(seq) would now restart at 1
        assert (await box.stats()).pending == 0
    async with Outbox(path) as box:
        assert await box.append([health(4)]) == [4]
        assert await box.append([health(5), health(6)]) == [5, 6]
        stats = await box.stats()
        assert (stats.last_seq, stats.acked_through, stats.pending) == (6, 3, 3)
        assert [e.seq for e in await box.pending(100)] == [4, 5, 6]


async def test_pending_is_oldest_first_and_round_trips_events(outbox: Outbox) -> None:
    events: list[Event] = [health(1), reading(4.5), move("3034ABCD0000000000000001", "store")]
    await outbox.append(events)
    pending = await outbox.pending(2)
    assert [p.seq for p in pending] == [1, 2]
    assert [p.event for p in await outbox.pending(10)] == events


async def test_ack_deletes_only_acknowledged_and_refuses_unassigned(outbox: Outbox) -> None:
    await outbox.append([health(n) for n in range(1, 6)])
    assert await outbox.ack(2) == 2
    assert [p.seq for p in await outbox.pending(10)] == [3, 4, 5]
    with pytest.raises(OutboxError, match="beyond"):
        await outbox.ack(6)
    assert await outbox.ack(1) == 0  # an old ack again: nothing more goes, acked_through stays
    assert (await outbox.stats()).acked_through == 2


async def test_append_is_one_transaction_all_or_nothing(outbox: Outbox) -> None:
    await outbox.append([health(1)])
    # A real SQLite failure in the middle of the ledger update of the second event of the call.
    await outbox.db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON on_hand WHEN NEW.epc = 'DEADBEEF' "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    with pytest.raises(OutboxError, match="disk says no"):
        await outbox.append([health(2), move("DEADBEEF", "store"), health(3)], {"tag_reads": 5})
    stats = await outbox.stats()
    assert (stats.last_seq, stats.pending) == (1, 1)
    assert await outbox.counters() == {}
    assert await outbox.append([health(4)]) == [2]  # no hole where the failed call was


async def test_ledger_follows_movements_readings_alarms_and_counters(outbox: Outbox) -> None:
    epc_a, epc_b = "3034ABCD0000000000000001", "3034ABCD0000000000000002"
    await outbox.append([move(epc_a, "store"), move(epc_b, "store")], {"tag_reads": 7})
    await outbox.append([move(epc_a, None, "store"), reading(5.0, 10), reading(4.0, 5)], {"tag_reads": 3})
    assert await outbox.on_hand() == {epc_b: "store"}
    assert await outbox.counters() == {"tag_reads": 10}
    raised = LocalAlarm(
        zone="cold-room",
        sensor_id="probe-1",
        rule="max_temperature",
        state="raised",
        value=9.0,
        limit=8.0,
        at=T0,
    )
    await outbox.append([raised])
    assert [(a.zone, a.rule) for a in await outbox.open_alarms()] == [("cold-room", "max_temperature")]
    await outbox.append([raised.model_copy(update={"state": "cleared", "value": 7.0})])
    assert await outbox.open_alarms() == []
    # The older reading (t+5) arrived after the newer one (t+10): latest stays at 5.0.
    status = read_status(outbox.path)
    assert [(s["sensor_id"], s["value"]) for s in status["sensors"]] == [("probe-1", 5.0)]


async def test_writer_groups_concurrent_submits_into_one_commit(outbox: Outbox) -> None:
    writer = OutboxWriter(outbox)
    # Queue everything before the writer runs, so the writer finds them all waiting.
    submits = [asyncio.create_task(writer.submit([health(n), health(n)], {"c": 1})) for n in range(20)]
    await asyncio.sleep(0)
    runner = asyncio.create_task(writer.run())
    results = await asyncio.gather(*submits)
    await writer.stop()
    await runner
    assert writer.commits == 1
    assert results == [[2 * n + 1, 2 * n + 2] for n in range(20)]
    assert await outbox.counters() == {"c": 20}
    with pytest.raises(OutboxError, match="stopped"):
        await writer.submit([health(1)])


async def test_sqlite_errors_are_translated(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(OutboxError, match="directory"):
        await Outbox(tmp_path / "dir.db").open()
    (tmp_path / "junk.db").write_bytes(b"this is not an SQLite file at all" * 100)
    with pytest.raises(OutboxError, match="not a database"):
        await Outbox(tmp_path / "junk.db").open()
    with pytest.raises(OutboxError, match="not open"):
        await Outbox(tmp_path / "x.db").pending(1)


async def test_status_reads_a_live_database_read_only(outbox: Outbox) -> None:
    await outbox.append(
        [move("3034ABCD0000000000000001", "store"), move("3034ABCD0000000000000002", "dock"), reading(3.5)],
        {"tag_reads": 42},
    )
    await outbox.ack(1)
    status = read_status(outbox.path)
    assert status["tag_reads"] == 42
    assert status["items_on_hand"] == 2
    assert status["items_by_location"] == {"dock": 1, "store": 1}
    assert (status["pending_events"], status["last_seq"], status["acked_through"]) == (2, 3, 1)
    assert status["sync_lag_s"] >= 0
    assert status["alarms_open"] == []
    # Read-only really means read-only.
    conn = sqlite3.connect(f"{outbox.path.resolve().as_uri()}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("DELETE FROM outbox")
    conn.close()
    await outbox.ack(3)
    assert read_status(outbox.path)["sync_lag_s"] == 0.0


async def test_status_after_clean_close_and_on_missing_db(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "edge.db") as box:
        await box.append([health(1)])
    assert read_status(tmp_path / "edge.db")["pending_events"] == 1
    with pytest.raises(EdgeStatusUnavailable, match="no edge database"):
        read_status(tmp_path / "missing.db")
