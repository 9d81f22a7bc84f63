"""Device transports: each opens one connection, runs until it fails, and raises TransportError.

Reconnecting is not their business: :func:`edge.supervisor.supervise` reruns them with back-off.
What a transport is and how it hands data over (one ``emit``): :mod:`edge.transports.protocol`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import get_args

from devices.readings import Measurement
from shelfsense.contract import Quantity, SensorReading

_QUANTITIES = frozenset(get_args(Quantity))
# SensorReading.model_validate without its Python wrapper (called for every MQTT reading).
_validate_reading = SensorReading.__pydantic_validator__.validate_python


def measurements_to_readings(
    measurements: Sequence[Measurement], sensor_id: str, zone: str | None, now: datetime
) -> list[SensorReading]:
    """Contract readings of one payload / poll; measurements without a sensor time get ``now``.

    When one payload carries several channels (e.g. two Tasmota probes), each gets its own sensor
    id ``<sensor_id>.<channel>``; a single-channel payload keeps the configured ``sensor_id``.
    Quantities outside the contract vocabulary (and non-finite values) are skipped.
    """
    # Channel suffixes only when the payload really carries several channels (rare: Tasmota).
    multi = len(measurements) > 1 and len({m.channel for m in measurements if m.channel}) > 1
    readings = []
    for m in measurements:
        if m.quantity not in _QUANTITIES or not math.isfinite(m.value):
            continue
        sid = f"{sensor_id}.{m.channel}" if multi and m.channel else sensor_id
        readings.append(
            _validate_reading(
                {
                    "sensor_id": sid,
                    "quantity": m.quantity,
                    "value": m.value,
                    "unit": m.unit,
                    "time": m.time or now,
                    "zone": zone,
                }
            )
        )
    return readings
