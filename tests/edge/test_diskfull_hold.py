"""edge.diskfull: what is held in memory while the disk is full stays within its bound, and the
bound drops the oldest telemetry first (stock events and alarms last), counting every drop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from test_outbox import health, move, reading

from edge.diskfull import MIN_FREE_BYTES, DiskFull, free_bytes


def test_bound_drops_oldest_telemetry_first_and_counts(tmp_path: Path) -> None:
    disk = DiskFull(tmp_path / "edge.db", limit=4)
    disk.hold([move("3034AA01", "shelf"), reading(1.0, 1), reading(2.0, 2)])
    disk.hold([health(1), move("3034AA02", "shelf"), reading(3.0, 3)])
    assert len(disk.held) == 4 and disk.dropped == 2
    assert disk.held == [move("3034AA01", "shelf"), health(1), move("3034AA02", "shelf"), reading(3.0, 3)]
    # Nothing but stock events: the oldest go, still counted.
    disk.hold([move(f"3034BB0{n}", "dock") for n in range(5)])
    assert len(disk.held) == 4 and disk.dropped == 2 + 3 + 2
    assert disk.held[-1] == move("3034BB04", "dock")
    assert disk.take_dropped() == 7 and disk.take_dropped() == 0


def test_take_and_unget_keep_the_order(tmp_path: Path) -> None:
    disk = DiskFull(tmp_path / "edge.db", limit=10)
    events = [reading(float(n), n) for n in range(5)]
    disk.hold(events)
    chunk = disk.take(3)
    disk.hold([reading(9.0, 9)])
    disk.unget(chunk)
    assert disk.held == [*events, reading(9.0, 9)]


async def test_transitions_are_announced_once_and_release_waiters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    said: list[tuple[bool, str]] = []
    disk = DiskFull(tmp_path / "edge.db", limit=10, announce=lambda full, text: said.append((full, text)))
    with caplog.at_level(logging.WARNING, logger="edge.diskfull"):
        disk.enter("no space")
        disk.enter("no space again")
        waiter = asyncio.create_task(disk.wait_for_space())
        await asyncio.sleep(0)
        assert not waiter.done()
        disk.leave()
        await asyncio.wait_for(waiter, 5)
        disk.leave()
    assert [full for full, _ in said] == [True, False]
    assert "EDGE DISK FULL (no space)" in said[0][1]
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]


def test_reserve_is_allocated_released_and_kept_out_of_the_room(tmp_path: Path) -> None:
    disk = DiskFull(tmp_path / "edge.db", limit=10, reserve_bytes=100_000)
    assert disk.ensure_reserve()
    assert disk.reserve.stat().st_blocks * 512 >= 100_000  # real blocks, not a sparse file
    assert disk.release_reserve() == 100_000 and not disk.reserve.exists()
    assert disk.release_reserve() == 0
    # With the reserve released, its room is not counted as room for data; free pages inside are.
    free = free_bytes(tmp_path)
    assert disk.has_room(0) == (free - 100_000 >= MIN_FREE_BYTES)
    huge = DiskFull(tmp_path / "edge.db", limit=10, reserve_bytes=free * 2)
    assert not huge.has_room(0) and huge.has_room(MIN_FREE_BYTES)
    assert not huge.ensure_reserve() and not huge.reserve.exists()  # no room for it: not made
