"""docs/influxdb.md's example line is what the cloud writes (influxdb-client's own Point encoding)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from cloud.influx import reading_point
from shelfsense.contract import SensorReading

DOC = Path(__file__).resolve().parents[2] / "docs" / "influxdb.md"


def test_documented_line_is_what_the_cloud_writes() -> None:
    text = DOC.read_text(encoding="utf-8")
    (line,) = re.findall(r"```\n(temperature,.*)\n```", text)
    reading = SensorReading(
        sensor_id="probe-1",
        quantity="temperature",
        value=4.5,
        unit="degC",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        zone="cold-1",
        flags=[],
    )
    assert reading_point(reading, site="site-1", zone="cold-1").to_line_protocol() == line
    for measurement in ("alert_event", "device_health", "edge_health", "zone_limits"):
        assert f"`{measurement}`" in text
