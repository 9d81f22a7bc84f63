"""``shelfsense edge run`` at the default log level, syncing to a real cloud: no line per request.

httpx logs every request at INFO ("HTTP Request: POST ... 200 OK"); at the default level the CLI
keeps it (and pymodbus' raw frames) at WARNING, so the edge log holds state changes only; the
cloud writes no access-log line per batch.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edge_harness import CloudChild, EdgeChild, toml_table

from simulators.modbus_probe import ModbusProbeSimulator


async def test_edge_syncing_to_a_real_cloud_logs_no_request_lines(tmp_path: Path) -> None:
    cloud = CloudChild(tmp_path / "cloud")
    token = await asyncio.to_thread(cloud.register_edge, "edge-1")
    await asyncio.to_thread(cloud.start)
    probe = ModbusProbeSimulator({1: lambda: (4.0, 60.0)})
    probe_task = asyncio.create_task(probe.run())
    values = {"port": probe.port, "slave": 1, "sensor_id": "probe-1", "zone": "cold", "poll_interval_s": 0.2}
    edge = EdgeChild(
        tmp_path / "edge", cloud.url, token, extra=toml_table("edge.modbus_probes", values, True)
    )
    try:
        edge.start()
        deadline = time.monotonic() + 60
        while cloud.acked_through("edge-1") < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert cloud.acked_through("edge-1") >= 5, edge.log_tail()  # readings were synced
    finally:
        await asyncio.to_thread(edge.stop)
        await asyncio.to_thread(cloud.stop)
        probe_task.cancel()
        await asyncio.gather(probe_task, return_exceptions=True)
        probe.close()
    log = (edge.workdir / "edge.log").read_text(errors="replace")
    assert "HTTP Request:" not in log and " httpx:" not in log, log
    assert "Traceback" not in log, log
    # The cloud's side: no access-log line per batch either (uvicorn's access log needs `-v`).
    cloud_log = (cloud.workdir / "cloud.log").read_text(errors="replace")
    assert "POST /api/v1/edges" not in cloud_log and "Traceback" not in cloud_log, cloud_log
