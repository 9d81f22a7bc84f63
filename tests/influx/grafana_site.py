"""Two hours of a realistic site, written to a real InfluxDB 1.x by the cloud's own exporter.

Zigbee2MQTT payloads (encoded as the firmware sends them, decoded by our codec) of four sensors in
three zones with different limits go through the cloud's ingest API; the cloud writes readings
(with the limits they were judged by), alert transitions, device and edge health to InfluxDB. Half
way through, cold-1's maximum is lowered from 8 to 6 °C (the cloud is restarted with the new
configuration), so the boards must show the limits each reading was stored with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from cloud.admin import create_edge_async
from cloud.main import create_app
from devices.mqtt_formats import encode_zigbee2mqtt
from devices.mqtt_registry import decode_payload
from shelfsense.config import CloudSettings, InfluxSettings, Settings, ZoneLimits
from shelfsense.services import InfluxdProcess
from simulators.scenario import DemoScenario

HOURS = 2
STEP_S = 60
SENSORS = {"zb-1": "cold-1", "zb-2": "cold-1", "fz-1": "freezer-1", "amb-1": "ambient-1"}
# (min_temp_c, max_temp_c, max_humidity) per zone, first and second hour
LIMITS = {
    "cold-1": ((2.0, 8.0, 85.0), (2.0, 6.0, 85.0)),
    "freezer-1": ((None, -18.0, None), (None, -18.0, None)),
    "ambient-1": ((15.0, 25.0, 60.0), (15.0, 25.0, 60.0)),
}


@dataclass
class Truth:
    """What was sent, to compare the boards' answers with."""

    site: str
    start: datetime
    end: datetime
    temperature: dict[str, list[tuple[datetime, float]]] = field(default_factory=lambda: defaultdict(list))
    humidity: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    battery: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    linkquality: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    health: list[dict[str, Any]] = field(default_factory=list)  # the coordinator's, in order

    def zone_temperatures(self, zone: str) -> list[float]:
        return [v for s, z in SENSORS.items() if z == zone for _, v in self.temperature[s]]


def _temperature(sensor: str, t: float, scenario: DemoScenario) -> tuple[float, float]:
    if sensor.startswith("zb"):  # the demo cold room, with its compressor failure
        return scenario.cold_room(t + (900.0 if sensor == "zb-2" else 0.0))
    if sensor == "fz-1":  # a freezer whose door is left open for five minutes
        door = 4.0 if 2400 <= t < 2700 else 0.0
        return round(-20.5 + 0.4 * math.sin(t / 600) + door, 2), 50.0
    return round(20.0 + 2.0 * math.sin(t / 900), 2), 45.0


def events(truth: Truth, hour: int) -> list[dict[str, Any]]:
    scenario = DemoScenario(cycle_s=HOURS * 3600)
    found: list[dict[str, Any]] = []
    for step in range(hour * 3600 // STEP_S, (hour + 1) * 3600 // STEP_S):
        t = step * STEP_S
        at = truth.start + timedelta(seconds=t)
        for index, (sensor, zone) in enumerate(SENSORS.items()):
            temperature, humidity = _temperature(sensor, t, scenario)
            payload = encode_zigbee2mqtt(
                temperature,
                humidity,
                battery=95 - index * 10 - step // 40,
                linkquality=100 + (step + index) % 9,
            )
            for m in decode_payload("zigbee2mqtt", f"zigbee2mqtt/{sensor}", payload):
                found.append(
                    {
                        "kind": "sensor_reading",
                        "sensor_id": sensor,
                        "quantity": m.quantity,
                        "value": m.value,
                        "unit": m.unit,
                        "time": at.isoformat(),
                        "zone": zone,
                        "flags": [],
                    }
                )
                series = getattr(truth, m.quantity)
                series[sensor].append((at, m.value) if m.quantity == "temperature" else m.value)
        if step % 10 == 0:
            truth.health.append(
                {
                    "kind": "device_health",
                    "device_id": "zigbee-coordinator",
                    "connected": step % 50 != 0,
                    "frames_ok": step * 100,
                    "frames_bad": step // 7,
                    "reconnects": step // 50,
                    "at": at.isoformat(),
                }
            )
            found.append(truth.health[-1])
    return found


def _settings(db: Path, influxdb: InfluxdProcess, site: str, hour: int) -> Settings:
    zones = [
        ZoneLimits(id=zone, site_id=site, min_temp_c=lo, max_temp_c=hi, max_humidity=rh)
        for zone, phases in LIMITS.items()
        for lo, hi, rh in (phases[hour],)
    ]
    influx = InfluxSettings(url=influxdb.url, database=influxdb.database)
    return Settings(cloud=CloudSettings(db_url=f"sqlite+aiosqlite:///{db}", influx=influx), zones=zones)


async def fill(influxdb: InfluxdProcess, site: str, db: Path) -> Truth:
    """Ingest the two hours through the cloud (one cloud run per hour); returns what was sent."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    truth = Truth(site, now - timedelta(hours=HOURS), now + timedelta(minutes=5))
    token, seq = "", 0
    for hour in range(HOURS):
        app = create_app(_settings(db, influxdb, site, hour))
        async with app.router.lifespan_context(app):
            if not token:
                token = (await create_edge_async(app.state.engine, site, "edge-1"))[1]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cloud.test") as client:
                found = events(truth, hour)
                for first in range(0, len(found), 250):
                    chunk = found[first : first + 250]
                    body = {
                        "v": 1,
                        "edge_id": "edge-1",
                        "created_at": chunk[-1].get("time", chunk[-1].get("at")),
                        "events": [{"seq": seq + i + 1, "event": e} for i, e in enumerate(chunk)],
                    }
                    seq += len(chunk)
                    response = await client.post(
                        "/api/v1/edges/edge-1/batches",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert response.status_code == 200, response.text
        # leaving the lifespan flushes the cloud's InfluxDB writer
    return truth
