"""A cloud child, an edge child and a Modbus probe simulator: the common set-up of the wiped-disk
and full-disk proofs (tests/edge/test_wiped_edge.py, tests/edge/test_disk_full.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from edge_harness import CloudChild, EdgeChild, toml_table

from simulators.modbus_probe import ModbusProbeSimulator

EDGE_ID = "edge-1"


@dataclass
class ProbeSite:
    cloud: CloudChild
    edge: EdgeChild  # not started
    probe: ModbusProbeSimulator  # running


@contextlib.asynccontextmanager
async def probe_site(tmp_path: Path, extra_toml: str = "") -> AsyncIterator[ProbeSite]:
    """Cloud started with the edge registered; the probe polled every 0.2 s; all stopped after."""
    cloud = CloudChild(tmp_path / "cloud")
    token = await asyncio.to_thread(cloud.register_edge, EDGE_ID)
    await asyncio.to_thread(cloud.start)
    probe = ModbusProbeSimulator({1: lambda: (4.0, 60.0)})
    probe_toml = toml_table(
        "edge.modbus_probes",
        {"port": probe.port, "slave": 1, "sensor_id": "probe-1", "zone": "cold", "poll_interval_s": 0.2},
        True,
    )
    edge = EdgeChild(tmp_path / "edge", cloud.url, token, EDGE_ID, extra=f"{probe_toml}\n{extra_toml}")
    running = asyncio.create_task(probe.run())
    try:
        yield ProbeSite(cloud, edge, probe)
    finally:
        running.cancel()
        probe.close()
        await asyncio.to_thread(edge.stop)
        await asyncio.to_thread(cloud.stop)
