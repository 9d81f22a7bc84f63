"""The InfluxDB writer against the real InfluxDB 1.x server, including it going down and coming back."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud.influx import (
    InfluxWriter,
    WriterOptions,
    alert_point,
    device_health_point,
    edge_health_point,
    reading_point,
    v1_writer,
    v2_writer,
)
from shelfsense.contract import DeviceHealth, SensorReading
from shelfsense.services import InfluxdProcess, free_port

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def site() -> str:
    return f"site-{secrets.token_hex(4)}"


def readings(count: int, start: datetime = T0, zone: str = "cold-1") -> list[SensorReading]:
    return [
        SensorReading(
            sensor_id="probe-1",
            quantity="temperature",
            value=4.0 + (i % 10) * 0.1,
            unit="degC",
            time=start + timedelta(seconds=i),
            zone=zone,
        )
        for i in range(count)
    ]


def query(server: InfluxdProcess, q: str) -> list[dict[str, Any]]:
    result = json.loads(server.query(q, server.database))["results"][0]
    assert "error" not in result, result
    return list(result.get("series", []))


def count(server: InfluxdProcess, measurement: str, site_id: str) -> int:
    series = query(server, f"SELECT count(*) FROM \"{measurement}\" WHERE site = '{site_id}'")
    # count(*) has a column per field the measurement has in the shared database (other tests
    # write limit fields); the points counted are the largest count of this site's fields.
    return max((int(n) for n in series[0]["values"][0][1:] if n is not None), default=0) if series else 0


async def wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_readings_alerts_and_health_round_trip(influxdb: InfluxdProcess) -> None:
    s = site()
    writer = v1_writer(
        influxdb.url, influxdb.database, options=WriterOptions(batch_size=50, flush_interval_s=0.1)
    )
    writer.start()
    writer.write(*(reading_point(r, site=s) for r in readings(120)))
    writer.write(
        alert_point(
            site=s,
            zone="cold-1",
            rule="max_temperature",
            state="raised",
            at=T0,
            alert_id="9",
            value=9.1,
            limit=8.0,
        ),
        device_health_point(
            DeviceHealth(device_id="uhf-1", connected=True, frames_ok=10, frames_bad=2, at=T0),
            site=s,
            edge="e1",
        ),
        edge_health_point(site=s, edge="e1", at=T0, online=True, sync_lag_s=1.5, outbox_depth=3),
    )
    await writer.close()
    assert writer.stats.written == 123 and writer.stats.batches >= 3
    assert count(influxdb, "temperature", s) == 120
    [series] = query(influxdb, f"SELECT zone, sensor, value FROM temperature WHERE site = '{s}' LIMIT 1")
    assert series["values"][0][1:] == ["cold-1", "probe-1", 4.0]
    [alert] = query(influxdb, f"SELECT alert_id, \"limit\", value, rule FROM alert_event WHERE site = '{s}'")
    assert alert["values"][0][1:] == ["9", 8.0, 9.1, "max_temperature"]
    [health] = query(influxdb, f"SELECT frames_bad, connected FROM device_health WHERE site = '{s}'")
    assert health["values"][0][1:] == [2, 1]


async def test_close_flushes_what_the_timer_has_not(influxdb: InfluxdProcess) -> None:
    s = site()
    writer = v1_writer(influxdb.url, influxdb.database, options=WriterOptions(flush_interval_s=3600))
    writer.start()
    writer.write(*(reading_point(r, site=s) for r in readings(500)))
    await asyncio.sleep(0.2)
    assert count(influxdb, "temperature", s) == 0  # nothing sent yet: below batch size, timer far away
    await writer.close()
    assert count(influxdb, "temperature", s) == 500
    assert writer.stats.dropped_on_close == 0


async def test_bad_points_are_rejected_not_retried(influxdb: InfluxdProcess) -> None:
    s = site()
    writer = v1_writer(influxdb.url, influxdb.database, options=WriterOptions(flush_interval_s=0.05))
    writer.start()
    writer.write(f"conflict,site={s} value=1.5")
    await writer.flush()
    writer.write(f'conflict,site={s} value="text"')  # field type conflict: InfluxDB answers 400
    await writer.flush()
    await writer.close()
    assert writer.stats.rejected == 1 and writer.stats.written == 1
    assert writer.healthy


@pytest.fixture
def own_influxd() -> Iterator[InfluxdProcess]:
    if not InfluxdProcess.available():
        pytest.skip("influxd not installed")
    server = InfluxdProcess().start()
    yield server
    server.cleanup()


async def test_buffers_while_influxdb_is_down_and_delivers_after_restart(own_influxd: InfluxdProcess) -> None:
    s = site()
    options = WriterOptions(batch_size=100, flush_interval_s=0.05, retry_base_s=0.05, retry_cap_s=0.5)
    writer = v1_writer(own_influxd.url, own_influxd.database, options=options)
    writer.start()
    writer.write(*(reading_point(r, site=s) for r in readings(100)))
    await wait_for(lambda: writer.stats.written == 100)

    await asyncio.to_thread(own_influxd.stop)
    started = time.monotonic()
    for chunk in range(5):  # ingest goes on while the server is away, never blocking
        writer.write(*(reading_point(r, site=s) for r in readings(100, T0 + timedelta(hours=chunk + 1))))
        await asyncio.sleep(0.05)
    assert time.monotonic() - started < 5
    await wait_for(lambda: not writer.healthy)
    assert writer.buffered > 0 and writer.stats.failed_attempts >= 1

    await asyncio.to_thread(own_influxd.start)  # same port, same data folder
    await wait_for(lambda: writer.buffered == 0 and writer.healthy, timeout_s=30)
    await writer.close()
    assert count(own_influxd, "temperature", s) == 600
    assert writer.stats.dropped_overflow == 0 and writer.stats.rejected == 0


async def test_overflow_drops_the_oldest_and_counts_them() -> None:
    options = WriterOptions(max_buffered=100, flush_interval_s=3600)
    writer = v1_writer(f"http://127.0.0.1:{free_port()}", "db", options=options)
    accepted = writer.write(*(f"m v={i} {i}" for i in range(250)))
    assert accepted == 250 and writer.buffered == 100 and writer.stats.dropped_overflow == 150
    assert writer._buffer[0] == "m v=150 150"  # the newest 100 are kept
    newest = InfluxWriter(writer.sink, WriterOptions(max_buffered=100, overflow="drop_newest"))
    assert newest.write(*(f"m v={i} {i}" for i in range(250))) == 100
    assert newest._buffer[-1] == "m v=99 99"
    await writer.close(timeout_s=0.5)
    assert writer.stats.dropped_on_close == 100


# --- InfluxDB 2.x API (influxdb-client's WriteApi) against a recording HTTP server ---------------


@pytest.fixture
def v2_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    received: list[tuple[str, dict[str, str], bytes]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                received.append((self.path, dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


async def test_v2_api_posts_org_bucket_and_token(
    v2_server: tuple[str, list[tuple[str, dict[str, str], bytes]]],
) -> None:
    url, received = v2_server
    writer = v2_writer(
        url, org="acme", bucket="cold", token="T0k", options=WriterOptions(flush_interval_s=0.05)
    )
    writer.start()
    writer.write(*(reading_point(r, site="s1") for r in readings(3)))
    await writer.close()
    assert writer.stats.written == 3
    [(path, headers, body)] = received
    assert path.startswith("/api/v2/write?")
    assert "org=acme" in path and "bucket=cold" in path and "precision=ns" in path
    assert headers["Authorization"] == "Token T0k"
    lines = body.decode().splitlines()
    assert len(lines) == 3 and lines[0].startswith(
        "temperature,sensor=probe-1,site=s1,unit=degC,zone=cold-1 value=4"
    )
