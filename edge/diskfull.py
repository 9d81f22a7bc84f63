"""A full disk at the edge: stay up, hold what must be held, say so, resume by itself.

While the edge database's file system is full (:class:`edge.errors.DiskFullError`):

- MQTT messages are not acknowledged: the MQTT sink waits for space (:meth:`DiskFull.wait_for_space`)
  before committing, so no PUBACK goes out; the transport's window fills and it stops reading, and
  the broker keeps the rest in the edge's persistent session (mind the broker's queue limit,
  Mosquitto's ``max_queued_messages``: see docs/edge.md);
- events of the serial devices (UHF, Modbus, NFC), alarms and device health are held in memory, at
  most ``limit`` events: past it the oldest telemetry (readings, observations, health) is dropped
  and counted (``disk_full_dropped``); stock events and alarms go last;
- a **reserve file** (``<db>.reserve``, ``reserve_bytes``) is allocated while there is space and
  deleted the moment the disk is full: without it even the sync's deletes of acknowledged rows
  (WAL frames, checkpoints) fail, and a database that filled the disk could never shrink its
  backlog. Data writes do not touch the reserve's room: they resume only when the file system has
  more than the reserve free again, or when the acknowledged deletes left free pages inside the
  database;
- the agent retries every ``retry_s`` once there is room, first with what it holds; it lets
  MQTT go on once the reserve could be allocated again (or the database has that much free
  inside); no operator action, no restart;
- the transition is logged (ERROR, then WARNING when space is back), published on MQTT as a local
  alarm (:func:`edge.alarms.edge_alarm_topic`) and reported to the cloud in every batch
  (``disk_full``, shown in the edge's health there).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge import downsample
from shelfsense.contract import Event

log = logging.getLogger(__name__)

# Below this much free space a retry is not worth trying: SQLite needs room for the WAL frames of
# a commit.
MIN_FREE_BYTES = 256 * 1024


def free_bytes(path: Path) -> int:
    """Free space for unprivileged writers on the file system holding ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


class DiskFull:
    """The disk-full state of one agent and the events it holds meanwhile (bounded)."""

    def __init__(
        self,
        db_path: Path,
        limit: int,
        *,
        retry_s: float = 2.0,
        reserve_bytes: int = 0,
        announce: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.directory = db_path.resolve().parent
        self.reserve = db_path.resolve().with_name(db_path.name + ".reserve")
        self.reserve_bytes = reserve_bytes
        self.limit = limit
        self.retry_s = retry_s
        self.full = False
        self.since: float | None = None
        self.dropped = 0  # events lost to the memory bound, in all
        self._dropped_counted = 0
        self.episodes = 0
        self.held: list[Event] = []
        self._announce = announce or (lambda _full, _text: None)
        self._space = asyncio.Event()
        self._space.set()

    def enter(self, reason: object) -> None:
        """The last commit failed for lack of space (idempotent)."""
        if self.full:
            return
        self.full = True
        self.since = time.monotonic()
        self.episodes += 1
        self._space.clear()
        released = self.release_reserve()
        text = (
            f"EDGE DISK FULL ({reason}): MQTT is no longer acknowledged (the broker keeps the "
            f"messages), serial readings are held in memory (at most {self.limit} events); "
            f"free space in {self.directory}: {free_bytes(self.directory)} bytes"
            f"{f'; released the {released} byte reserve for the sync' if released else ''}"
        )
        log.error("%s", text)
        self._announce(True, text)

    def leave(self) -> None:
        """A commit succeeded again."""
        if not self.full:
            return
        lasted = time.monotonic() - (self.since or time.monotonic())
        self.full = False
        self.since = None
        self._space.set()
        text = f"edge disk space is back after {lasted:.0f} s: storing and acknowledging again"
        if self.dropped:
            text += f" ({self.dropped} telemetry events dropped so far by the memory bound)"
        log.warning("%s", text)
        self._announce(False, text)

    async def wait_for_space(self) -> None:
        await self._space.wait()

    def has_room(self, free_inside_db: int) -> bool:
        """Room for data again: beyond the reserve on the file system, or inside the database."""
        outside = free_bytes(self.directory) - (0 if self.reserve.exists() else self.reserve_bytes)
        return max(outside, free_inside_db) >= MIN_FREE_BYTES

    def ensure_reserve(self) -> bool:
        """Allocate the reserve file if it is missing and there is room for it (and more)."""
        if not self.reserve_bytes or self.reserve.exists():
            return True
        if free_bytes(self.directory) < self.reserve_bytes + MIN_FREE_BYTES:
            return False
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)  # real blocks, not a sparse file
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot allocate the disk-full reserve %s: %s", self.reserve, exc)
            self.reserve.unlink(missing_ok=True)
            return False
        return True

    def release_reserve(self) -> int:
        try:
            size = self.reserve.stat().st_size
            self.reserve.unlink()
        except OSError:
            return 0
        return size

    def hold(self, events: Sequence[Event]) -> None:
        """Keep ``events`` for later; past the limit drop the oldest telemetry (then the oldest)."""
        self.held.extend(events)
        excess = len(self.held) - self.limit
        if excess <= 0:
            return
        keep: list[Event] = []
        for event in self.held:
            if excess > 0 and downsample.is_telemetry(event):
                excess -= 1
                continue
            keep.append(event)
        if excess > 0:  # nothing but stock events and alarms left: the oldest go
            keep = keep[excess:]
        self.dropped += len(self.held) - len(keep)
        self.held = keep

    def take(self, count: int) -> list[Event]:
        """The oldest ``count`` held events, removed from the buffer (put back with :meth:`unget`)."""
        taken, self.held = self.held[:count], self.held[count:]
        return taken

    def unget(self, events: Sequence[Event]) -> None:
        self.held[:0] = events

    def take_dropped(self) -> int:
        """Drops not yet added to the stored ``disk_full_dropped`` counter."""
        new, self._dropped_counted = self.dropped - self._dropped_counted, self.dropped
        return new
