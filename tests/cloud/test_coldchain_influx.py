"""The cloud hands readings, device health and alert events to a real InfluxDB 1.x after commit,
and flushes what is buffered when it shuts down (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
from conftest import MAX_BODY, batch, health, reading

from cloud.admin import create_edge_async
from cloud.main import create_app
from shelfsense.config import CloudSettings, InfluxSettings, Settings, ZoneLimits
from shelfsense.services import InfluxdProcess


def query(server: InfluxdProcess, q: str) -> list[dict[str, Any]]:
    result = json.loads(server.query(q, server.database))["results"][0]
    return list(result.get("series", []))


async def test_batch_reaches_influxdb_and_shutdown_flushes(db_url: str, influxdb: InfluxdProcess) -> None:
    site = f"site-{secrets.token_hex(4)}"  # the InfluxDB server is shared by the session
    settings = Settings(
        cloud=CloudSettings(
            db_url=db_url,
            max_body_bytes=MAX_BODY,
            max_event_age_s=None,  # conftest's events are dated 2025
            influx=InfluxSettings(url=influxdb.url, database=influxdb.database),
        ),
        zones=[ZoneLimits(id="cold-1", site_id=site, max_temp_c=8.0, max_humidity=85.0)],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        token = (await create_edge_async(app.state.engine, site, "edge-1"))[1]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
            events = [(s, reading(s * 10, 5.0 + s)) for s in range(1, 6)]  # 9 and 10 °C: an alert
            events += [(6, reading(60, 70.0, quantity="humidity")), (7, health(61, device="probe-1"))]
            response = await client.post(
                "/api/v1/edges/edge-1/batches",
                json=batch("edge-1", events),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
        # Leaving the lifespan at once: the writer's 1 s timer has not fired; close must flush.
    [temperature] = query(influxdb, f"SELECT zone, sensor, value FROM temperature WHERE site = '{site}'")
    assert [row[3] for row in temperature["values"]] == [6.0, 7.0, 8.0, 9.0, 10.0]
    assert {(row[1], row[2]) for row in temperature["values"]} == {("cold-1", "probe-1")}
    [humidity] = query(influxdb, f"SELECT value FROM humidity WHERE site = '{site}'")
    assert humidity["values"][0][1] == 70.0
    # Each reading carries its zone's limit for its quantity (boards draw per-sensor thresholds).
    [limited] = query(influxdb, f"SELECT limit_min, limit_max FROM temperature WHERE site = '{site}'")
    assert [row[1:] for row in limited["values"]] == [[None, 8.0]] * 5
    [humid_limit] = query(influxdb, f"SELECT limit_max FROM humidity WHERE site = '{site}'")
    assert humid_limit["values"][0][1] == 85.0
    [alert] = query(
        influxdb, f'SELECT rule, "state", value, "limit" FROM alert_event WHERE site = \'{site}\''
    )
    # One point per transition, at the first breach (t=40 s), with the peak as of the batch's end.
    assert [row[1:] for row in alert["values"]] == [["max_temperature", "raised", 10, 8]]
    assert alert["values"][0][0].startswith("2025-01-01T12:00:40")
    [device] = query(influxdb, f"SELECT edge, device, frames_bad FROM device_health WHERE site = '{site}'")
    assert device["values"][0][1:] == ["edge-1", "probe-1", 1]
    # Site health and the limits the dashboards draw as threshold lines.
    [edge] = query(
        influxdb, f"SELECT online, sync_lag_s FROM edge_health WHERE site = '{site}' AND edge = 'edge-1'"
    )
    assert edge["values"][0][1] == 1
    assert edge["values"][0][2] > 3600  # the readings are stamped 2025-01-01: far behind
    [limits] = query(influxdb, f"SELECT zone, max_temp_c FROM zone_limits WHERE site = '{site}'")
    assert [row[1:] for row in limits["values"]] == [["cold-1", 8.0]]  # once, not per reading
