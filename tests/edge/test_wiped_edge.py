"""An edge whose database is wiped loses nothing: its new incarnation is a new stream in the cloud.

Real processes (cloud child on SQLite, ``shelfsense edge run`` child) and a Modbus probe simulator
on a pseudo-terminal. Before incarnations, the restarted edge's ``seq 1, 2, ...`` were acknowledged
as duplicates of the old stream and deleted by the edge: silently lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from edge_harness import CloudChild, EdgeChild
from probe_site import EDGE_ID, probe_site
from test_durability import status_or_empty, wait_for

from edge.status import read_status

pytestmark = pytest.mark.integration


@dataclass
class WipeSite:
    cloud: CloudChild
    edge: EdgeChild

    def synced(self, at_least: int) -> bool:
        status = status_or_empty(self.edge.db_path)
        last = status.get("last_seq", 0)
        return last >= at_least and status.get("pending_events") == 0 and self.cloud_ack() == last

    def cloud_ack(self) -> int:
        return self.cloud.acked_through(EDGE_ID)

    def cloud_edge(self) -> tuple[str | None, int]:
        incarnation, offset = self.cloud.query(
            "SELECT incarnation, seq_offset FROM edges WHERE edge_id = ?", [EDGE_ID]
        )[0]
        return incarnation, int(offset)


@pytest.fixture
async def wipe_site(tmp_path: Path) -> AsyncIterator[WipeSite]:
    async with probe_site(tmp_path) as site:
        yield WipeSite(site.cloud, site.edge)


async def test_wiped_edge_database_starts_a_new_stream_none_dropped(wipe_site: WipeSite) -> None:
    site = wipe_site
    site.edge.start()
    await wait_for(lambda: site.synced(10), 60, "the first events in the cloud")
    assert await asyncio.to_thread(site.edge.stop) == 0, site.edge.log_tail()
    old_incarnation = read_status(site.edge.db_path)["incarnation"]
    assert old_incarnation and site.cloud_edge() == (old_incarnation, 0)
    # (The last health event of the stop may not have made it: the wipe loses what was unsent.)
    old_last = site.cloud_ack()
    assert site.cloud.seqs(EDGE_ID) == list(range(1, old_last + 1))

    # The disk is wiped (or replaced): database, WAL and shared memory file all gone.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{site.edge.db_path}{suffix}").unlink(missing_ok=True)
    site.edge.start()
    await wait_for(lambda: site.synced(10), 60, "the new incarnation's events in the cloud")
    assert await asyncio.to_thread(site.edge.stop) == 0, site.edge.log_tail()

    second = read_status(site.edge.db_path)
    new_last, new_incarnation = second["last_seq"], second["incarnation"]
    assert new_incarnation and new_incarnation != old_incarnation
    # Every event of both databases is stored once: the new stream follows the old one.
    assert site.cloud.seqs(EDGE_ID) == list(range(1, old_last + new_last + 1))
    assert site.cloud_edge() == (new_incarnation, old_last)
    assert site.cloud_ack() == new_last and second["pending_events"] == 0
    new_readings = site.cloud.query(
        "SELECT COUNT(*) FROM events WHERE edge_id = ? AND seq > ? AND kind = 'sensor_reading'",
        [EDGE_ID, old_last],
    )[0][0]
    assert new_readings > 0
    # An operator is told, and the cloud's log says so.
    alerts = site.cloud.query(
        "SELECT zone, status, severity, limit_source FROM alerts WHERE kind = 'edge_incarnation'"
    )
    assert len(alerts) == 1 and alerts[0][:3] == (EDGE_ID, "open", "critical"), alerts
    assert new_incarnation[:12] in alerts[0][3]
    assert "NEW INCARNATION" in site.cloud.log_tail(200)
