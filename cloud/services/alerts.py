"""Cold-chain alert evaluation: pure logic over one batch, no I/O.

:class:`AlertBook` starts from the site's open alerts, is fed readings and edge alarms in time
order, and afterwards reports which alerts are new and which existing ones changed. The ingest
service loads and persists; this module only decides.

Rules (names shared with :class:`shelfsense.contract.LocalAlarm`):

- ``max_temperature``: temperature above ``max_temp_c``; recovered at ``<= max_temp_c - hysteresis``.
- ``min_temperature``: temperature below ``min_temp_c``; recovered at ``>= min_temp_c + hysteresis``.
- ``max_humidity``: humidity above ``max_humidity``; recovered at ``<= max_humidity - hysteresis``
  (the zone has one hysteresis number, used in the unit of the rule).

At most one alert per ``(site, zone, rule)`` is open. An edge ``raised`` alarm merges into the open
alert (source ``both``) or opens one (source ``edge``). An edge ``cleared`` alarm resolves nothing
when the cloud has a limit for that rule (cloud readings decide); it does resolve an edge-opened
alert for a rule the cloud has no limit for, since nothing else ever could.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cloud.core.config import ZoneKey
from cloud.core.db import utc
from shelfsense.config import ZoneLimits
from shelfsense.contract import LocalAlarm, SensorReading

Rule = Literal["max_temperature", "min_temperature", "max_humidity"]
# Readings the edge itself flags as implausible must not raise alerts (a broken probe is not a
# warm cold room); they are still stored.
IGNORED_FLAGS = frozenset({"out_of_range"})


@dataclass(slots=True)
class Alert:
    """One alert row, mutable while a batch is evaluated."""

    site_id: str
    zone: str
    rule: str
    status: str
    source: str
    sensor_id: str | None
    limit: float | None
    peak_value: float
    last_value: float
    first_breach_at: datetime
    last_breach_at: datetime
    resolved_at: datetime | None = None
    id: int | None = None
    dirty: bool = field(default=False, compare=False)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Alert:
        return cls(**{name: row[name] for name in _COLUMNS})

    def to_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}


_COLUMNS = (
    "id",
    "site_id",
    "zone",
    "rule",
    "status",
    "source",
    "sensor_id",
    "limit",
    "peak_value",
    "last_value",
    "first_breach_at",
    "last_breach_at",
    "resolved_at",
)


@dataclass(frozen=True, slots=True)
class _Check:
    rule: Rule
    limit: float
    breached: bool
    recovered: bool


def _checks(reading: SensorReading, zone: ZoneLimits) -> list[_Check]:
    value, hysteresis = reading.value, zone.hysteresis_c
    checks: list[_Check] = []
    if reading.quantity == "temperature":
        if zone.max_temp_c is not None:
            limit = zone.max_temp_c
            checks.append(_Check("max_temperature", limit, value > limit, value <= limit - hysteresis))
        if zone.min_temp_c is not None:
            limit = zone.min_temp_c
            checks.append(_Check("min_temperature", limit, value < limit, value >= limit + hysteresis))
    elif reading.quantity == "humidity" and zone.max_humidity is not None:
        limit = zone.max_humidity
        checks.append(_Check("max_humidity", limit, value > limit, value <= limit - hysteresis))
    return checks


def _cloud_has_limit(zone: ZoneLimits | None, rule: str) -> bool:
    if zone is None:
        return False
    limits = {"max_temperature": zone.max_temp_c, "min_temperature": zone.min_temp_c}
    limits["max_humidity"] = zone.max_humidity
    return limits.get(rule) is not None


def _more_extreme(rule: str, current: float, value: float) -> float:
    return min(current, value) if rule == "min_temperature" else max(current, value)


class AlertBook:
    """Open alerts of one site plus the alerts a batch opens, resolves or updates."""

    def __init__(self, site_id: str, zones: Mapping[ZoneKey, ZoneLimits], open_alerts: Iterable[Alert]):
        self.site_id = site_id
        self._zones = zones
        self._open: dict[tuple[str, str], Alert] = {(a.zone, a.rule): a for a in open_alerts}
        self._resolved: list[Alert] = []
        self.new: list[Alert] = []

    def on_reading(self, reading: SensorReading) -> None:
        if reading.zone is None or IGNORED_FLAGS.intersection(reading.flags):
            return
        zone = self._zones.get((self.site_id, reading.zone))
        if zone is None:
            return
        at = utc(reading.time)
        for check in _checks(reading, zone):
            current = self._open.get((reading.zone, check.rule))
            if check.breached:
                if current is None:
                    self._open_alert(
                        reading.zone, check.rule, "cloud", reading.sensor_id, check.limit, reading.value, at
                    )
                else:
                    self._breach(current, reading.value, at, "cloud")
            elif current is not None:
                current.last_value = reading.value
                current.dirty = True
                if check.recovered:
                    self._resolve(current, at)

    def on_local_alarm(self, alarm: LocalAlarm) -> None:
        at = utc(alarm.at)
        current = self._open.get((alarm.zone, alarm.rule))
        if alarm.state == "raised":
            if current is None:
                self._open_alert(
                    alarm.zone, alarm.rule, "edge", alarm.sensor_id, alarm.limit, alarm.value, at
                )
            else:
                self._breach(current, alarm.value, at, "edge")
            return
        zone = self._zones.get((self.site_id, alarm.zone))
        if current is not None and not _cloud_has_limit(zone, alarm.rule):
            self._resolve(current, at)

    def changed(self) -> tuple[list[Alert], list[Alert]]:
        """``(new alerts, updated existing alerts)`` in their final state."""
        new_ids = {id(a) for a in self.new}
        touched = [*self._open.values(), *self._resolved]
        updated = [a for a in touched if a.dirty and id(a) not in new_ids]
        return self.new, updated

    def _open_alert(
        self, zone: str, rule: str, source: str, sensor_id: str, limit: float, value: float, at: datetime
    ) -> None:
        alert = Alert(
            site_id=self.site_id,
            zone=zone,
            rule=rule,
            status="open",
            source=source,
            sensor_id=sensor_id,
            limit=limit,
            peak_value=value,
            last_value=value,
            first_breach_at=at,
            last_breach_at=at,
            dirty=True,
        )
        self._open[(zone, rule)] = alert
        self.new.append(alert)

    @staticmethod
    def _breach(alert: Alert, value: float, at: datetime, source: str) -> None:
        alert.peak_value = _more_extreme(alert.rule, alert.peak_value, value)
        alert.last_value = value
        alert.first_breach_at = min(alert.first_breach_at, at)
        alert.last_breach_at = max(alert.last_breach_at, at)
        if alert.source != source:
            alert.source = "both"
        alert.dirty = True

    def _resolve(self, alert: Alert, at: datetime) -> None:
        alert.status = "resolved"
        alert.resolved_at = at
        alert.dirty = True
        del self._open[(alert.zone, alert.rule)]
        self._resolved.append(alert)


__all__ = ["IGNORED_FLAGS", "Alert", "AlertBook"]
