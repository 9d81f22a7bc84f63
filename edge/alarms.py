"""Local cold-chain alarms: a pure evaluator of zone limits with hysteresis.

A reading beyond a limit raises a :class:`LocalAlarm` once; the alarm clears only when the value is
back inside the limit by the zone's hysteresis (``hysteresis_c``; for humidity the same number is
used in %RH), so a probe hovering around the limit does not flap. The agent appends the alarm to
the outbox like any event, logs it, and publishes it on ``shelfsense/<site>/alarms/<zone>`` when
MQTT is configured.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shelfsense.config import ZoneLimits
from shelfsense.contract import LocalAlarm, SensorReading
from shelfsense.vocabulary import Rule, breached, cleared


@dataclass(frozen=True, slots=True)
class _Limit:
    rule: Rule
    quantity: str
    limit: float
    hysteresis: float

    def breached(self, value: float) -> bool:
        return breached(self.rule, value, self.limit)

    def cleared(self, value: float) -> bool:
        return cleared(self.rule, value, self.limit, self.hysteresis)


def _limits(zone: ZoneLimits) -> list[_Limit]:
    limits = []
    if zone.max_temp_c is not None:
        limits.append(_Limit("max_temperature", "temperature", zone.max_temp_c, zone.hysteresis_c))
    if zone.min_temp_c is not None:
        limits.append(_Limit("min_temperature", "temperature", zone.min_temp_c, zone.hysteresis_c))
    if zone.max_humidity is not None:
        limits.append(_Limit("max_humidity", "humidity", zone.max_humidity, zone.hysteresis_c))
    return limits


class AlarmEvaluator:
    """Zone limits -> raised/cleared transitions. ``open_alarms`` restores state after a restart."""

    def __init__(self, zones: Sequence[ZoneLimits], open_alarms: Iterable[tuple[str, str, str]] = ()) -> None:
        self._limits = {zone.id: _limits(zone) for zone in zones}
        self._open: set[tuple[str, str, str]] = set(open_alarms)  # (zone, sensor_id, rule)

    @property
    def open_alarms(self) -> frozenset[tuple[str, str, str]]:
        return frozenset(self._open)

    def evaluate(self, reading: SensorReading) -> list[LocalAlarm]:
        if reading.zone is None:
            return []
        alarms = []
        for limit in self._limits.get(reading.zone, ()):
            if limit.quantity != reading.quantity:
                continue
            key = (reading.zone, reading.sensor_id, limit.rule)
            state: Literal["raised", "cleared"]
            if key not in self._open and limit.breached(reading.value):
                self._open.add(key)
                state = "raised"
            elif key in self._open and limit.cleared(reading.value):
                self._open.discard(key)
                state = "cleared"
            else:
                continue
            alarms.append(
                LocalAlarm(
                    zone=reading.zone,
                    sensor_id=reading.sensor_id,
                    rule=limit.rule,
                    state=state,
                    value=reading.value,
                    limit=limit.limit,
                    at=reading.time,
                )
            )
        return alarms


def alarm_topic(site_id: str, zone: str) -> str:
    return f"shelfsense/{site_id}/alarms/{zone}"


def alarm_payload(alarm: LocalAlarm) -> bytes:
    return json.dumps(alarm.model_dump(mode="json"), separators=(",", ":")).encode()


def edge_alarm_topic(site_id: str) -> str:
    """Alarms about the gateway itself (e.g. ``disk_full``), next to the zones' alarms."""
    return f"shelfsense/{site_id}/alarms/edge"


def edge_alarm_payload(edge_id: str, rule: str, raised: bool, text: str, at: datetime) -> bytes:
    body = {
        "kind": "edge_alarm",
        "edge_id": edge_id,
        "rule": rule,
        "state": "raised" if raised else "cleared",
        "text": text,
        "at": at.isoformat(),
    }
    return json.dumps(body, separators=(",", ":")).encode()
