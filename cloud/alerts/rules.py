"""Cold-chain alert evaluation: pure logic over one batch (or one gap tick), no I/O.

:class:`AlertBook` starts from the site's active alerts (``open`` or ``acknowledged``) and the
persisted excursion-evaluator states of the zones involved, is fed readings and edge alarms in time
order, and afterwards reports which alerts are new, which existing ones changed, which evaluator
states changed, the excursion events, and the transitions people must be told about. The ingest
service (:mod:`cloud.coldchain.service`) loads and persists; this module only decides.

Excursions are computed by :class:`cloud.coldchain.excursions.ExcursionEvaluator`, one per
``(zone, sensor, quantity)``, from the readings themselves. Rules (alert ``rule`` names; the first
three are shared with :class:`shelfsense.contract.LocalAlarm` so edge and cloud merge):

- ``max_temperature`` / ``min_temperature`` / ``max_humidity``: single-event, beyond the limit for
  ``single_event_s`` (0: the first reading beyond); cleared at ``limit -/+ hysteresis``.
- ``max_temperature_instant`` / ``min_temperature_instant``: ``instant_margin_c`` beyond the limit.
- ``max_temperature_cumulative``: total time above the max over the zone's history; never clears.
- ``gap``: no reading from a sensor of the zone for ``gap_s`` (raised by the periodic tick).

One alert per ``(site, zone, rule)`` excursion: more sensors and the edge merge into it. An alert
resolves when no evaluator of its zone is still in excursion for its rule and a reading is back
inside its limit by the hysteresis (or, for a gap, when data flows again); an operator may also
close it with a reason (:mod:`cloud.alerts.lifecycle`). An edge ``cleared`` alarm resolves
an alert only for a rule the cloud has no limit for, since then nothing else ever could.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cloud.coldchain.excursions import (
    CumulativeRule,
    DoorOpenPolicy,
    ExcursionConfig,
    ExcursionEvaluator,
    ExcursionEvent,
    InstantRule,
    Rule,
    SingleEventRule,
)
from cloud.core.config import ZoneKey
from cloud.core.db import utc
from shelfsense.config import ColdChainSettings, ZoneLimits
from shelfsense.contract import LocalAlarm, SensorReading
from shelfsense.vocabulary import breached, cleared, rule_direction

Quantity = Literal["temperature", "humidity"]
StateKey = tuple[str, str, str]  # (zone, sensor_id, quantity)
ACTIVE = ("open", "acknowledged")
# Readings the edge itself flags as implausible must not raise alerts (a broken probe is not a
# warm cold room); they are still stored.
IGNORED_FLAGS = frozenset({"out_of_range"})
GAP_RULE = "gap"
RULE_QUANTITY: dict[str, Quantity] = {  # also gives messages their units
    "max_temperature": "temperature",
    "min_temperature": "temperature",
    "max_temperature_instant": "temperature",
    "min_temperature_instant": "temperature",
    "max_temperature_cumulative": "temperature",
    "max_humidity": "humidity",
}
_SEVERITY = {"instant": "critical", "cumulative": "critical"}


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColdChainRules:
    """The rule parameters shared by every zone (from ``[cloud.coldchain]``)."""

    single_event_s: float = 0.0
    cumulative_s: float | None = None
    instant_margin_c: float | None = None
    gap_s: float | None = 15 * 60.0
    door: DoorOpenPolicy | None = None

    @classmethod
    def from_settings(cls, cs: ColdChainSettings) -> ColdChainRules:
        door = None
        if cs.door_rise_c is not None:
            door = DoorOpenPolicy(cs.door_rise_c, cs.door_within_s, cs.door_grace_s)
        gap_s = cs.gap_minutes * 60 if cs.gap_minutes is not None else None
        return cls(cs.single_event_s, cs.cumulative_s, cs.instant_margin_c, gap_s, door)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits in force for one zone; ``source`` says where they came from."""

    min_temp_c: float | None = None
    max_temp_c: float | None = None
    max_humidity: float | None = None
    hysteresis: float = 0.5
    source: str = "zone"

    def as_dict(self) -> dict[str, Any]:
        return {
            "min_temp_c": self.min_temp_c,
            "max_temp_c": self.max_temp_c,
            "max_humidity": self.max_humidity,
            "hysteresis": self.hysteresis,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class ProductLimits:
    """The strictest storage temperatures of the products stored in a zone (from master data)."""

    skus: tuple[str, ...]
    min_temp_c: float | None
    max_temp_c: float | None


def effective_limits(zone: ZoneLimits | None, product: ProductLimits | None) -> Limits | None:
    """Zone limits, with the products' storage temperatures winning where lots of them are."""
    if zone is None and product is None:
        return None
    hysteresis = zone.hysteresis_c if zone is not None else 0.5
    min_c = zone.min_temp_c if zone is not None else None
    max_c = zone.max_temp_c if zone is not None else None
    source = "zone"
    if product is not None:
        min_c = product.min_temp_c if product.min_temp_c is not None else min_c
        max_c = product.max_temp_c if product.max_temp_c is not None else max_c
        source = "product:" + ",".join(product.skus)
    humidity = zone.max_humidity if zone is not None else None
    return Limits(min_c, max_c, humidity, hysteresis, source)


def excursion_config(limits: Limits, quantity: str, rules: ColdChainRules) -> ExcursionConfig | None:
    """The evaluator rule set of one sensor stream; None when nothing about it is monitored."""
    found: list[Rule] = []
    h = limits.hysteresis
    if quantity == "temperature":
        if limits.max_temp_c is not None:
            top = limits.max_temp_c
            found.append(SingleEventRule("max_temperature", "above", top, rules.single_event_s, h))
            if rules.instant_margin_c is not None:
                found.append(InstantRule("max_temperature_instant", "above", top + rules.instant_margin_c, h))
            if rules.cumulative_s is not None:
                found.append(CumulativeRule("max_temperature_cumulative", "above", top, rules.cumulative_s))
        if limits.min_temp_c is not None:
            low = limits.min_temp_c
            found.append(SingleEventRule("min_temperature", "below", low, rules.single_event_s, h))
            if rules.instant_margin_c is not None:
                found.append(InstantRule("min_temperature_instant", "below", low - rules.instant_margin_c, h))
        door = rules.door
    elif quantity == "humidity" and limits.max_humidity is not None:
        found.append(SingleEventRule("max_humidity", "above", limits.max_humidity, rules.single_event_s, h))
        door = None
    else:
        return None
    if not found:
        return None
    return ExcursionConfig(tuple(found), rules.gap_s, door)


# --- alerts ---------------------------------------------------------------------------------------


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
    kind: str = "single_event"
    severity: str = "warning"
    limit_source: str | None = None
    resolve_reason: str | None = None
    escalation_level: int = 0  # read for the audience of notices; only the tick changes it
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
    "kind",
    "severity",
    "limit_source",
    "resolve_reason",
    "escalation_level",
)


@dataclass(frozen=True, slots=True)
class Transition:
    """Something people are told about: an alert ``raised`` or ``resolved`` by the evaluation."""

    alert: Alert
    state: Literal["raised", "resolved"]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An excursion event of one sensor, with the alert it opened, fed or resolved (if any)."""

    zone: str
    sensor_id: str
    event: ExcursionEvent
    alert: Alert | None


def _beyond(rule: str, value: float, limit: float | None) -> bool:
    return limit is not None and breached(rule, value, limit)


def _back_inside(rule: str, value: float, limit: float | None, hysteresis: float) -> bool:
    return limit is not None and cleared(rule, value, limit, hysteresis)


def _more_extreme(rule: str, current: float, value: float) -> float:
    return min(current, value) if rule_direction(rule) == "below" else max(current, value)


def _cloud_limit(limits: Limits | None, rule: str) -> float | None:
    if limits is None:
        return None
    return {
        "max_temperature": limits.max_temp_c,
        "min_temperature": limits.min_temp_c,
        "max_humidity": limits.max_humidity,
    }.get(rule)


class AlertBook:
    """Active alerts of one site plus what a batch (or tick) opens, resolves or updates."""

    def __init__(
        self,
        site_id: str,
        zones: Mapping[ZoneKey, ZoneLimits],
        open_alerts: Iterable[Alert],
        *,
        rules: ColdChainRules | None = None,
        states: Mapping[StateKey, str] | None = None,
        products: Mapping[str, ProductLimits] | None = None,
    ) -> None:
        self.site_id = site_id
        self._zones = zones
        self._rules = rules or ColdChainRules()
        self._products = products or {}
        self._open: dict[tuple[str, str], Alert] = {(a.zone, a.rule): a for a in open_alerts}
        self._resolved: list[Alert] = []
        self._snapshots: dict[StateKey, str] = dict(states or {})
        self._evaluators: dict[StateKey, ExcursionEvaluator] = {}
        self.new: list[Alert] = []
        self.events: list[RecordedEvent] = []
        self.transitions: list[Transition] = []

    # --- inputs -------------------------------------------------------------------------------

    def limits(self, zone: str) -> Limits | None:
        return effective_limits(self._zones.get((self.site_id, zone)), self._products.get(zone))

    def on_reading(self, reading: SensorReading) -> None:
        if reading.zone is None or IGNORED_FLAGS.intersection(reading.flags):
            return
        zone, limits = reading.zone, self.limits(reading.zone)
        if limits is None:
            return
        evaluator = self._evaluator((zone, reading.sensor_id, reading.quantity), limits)
        if evaluator is None:
            return
        at = utc(reading.time)
        for event in evaluator.feed(at, reading.value):
            self._apply(zone, reading.sensor_id, event, limits)
        self._follow_reading(zone, reading, at, limits)

    def on_local_alarm(self, alarm: LocalAlarm) -> None:
        at = utc(alarm.at)
        current = self._open.get((alarm.zone, alarm.rule))
        if alarm.state == "raised":
            if current is None and self._door_open(alarm.zone):
                return  # the edge knows no door grace; the cloud raises if the excursion outlasts it
            if current is None:
                alert = self._open_alert(alarm.zone, alarm.rule, "edge", alarm.sensor_id, alarm.limit, at, at)
                alert.kind = "local_alarm"
                alert.peak_value = alert.last_value = alarm.value
            else:
                self._breach(current, alarm.value, at, "edge")
            return
        if current is not None and _cloud_limit(self.limits(alarm.zone), alarm.rule) is None:
            self._resolve(current, at)

    def tick(self, key: StateKey, now: datetime) -> None:
        """Let one evaluator notice silence (gap alerts)."""
        limits = self.limits(key[0])
        if limits is None:
            return
        evaluator = self._evaluator(key, limits)
        if evaluator is not None:
            for event in evaluator.tick(now):
                self._apply(key[0], key[1], event, limits)

    # --- outputs ------------------------------------------------------------------------------

    def changed(self) -> tuple[list[Alert], list[Alert]]:
        """``(new alerts, updated existing alerts)`` in their final state."""
        new_ids = {id(a) for a in self.new}
        touched = [*self._open.values(), *self._resolved]
        updated = [a for a in touched if a.dirty and id(a) not in new_ids]
        return self.new, updated

    def states(self) -> dict[StateKey, tuple[str, datetime | None]]:
        """Evaluator states that were used: JSON snapshot and last reading time."""
        out: dict[StateKey, tuple[str, datetime | None]] = {}
        for key, evaluator in self._evaluators.items():
            snapshot = json.dumps(evaluator.snapshot(), separators=(",", ":"))
            if snapshot != self._snapshots.get(key):
                last = evaluator.state.last_time
                out[key] = (snapshot, datetime.fromtimestamp(last, UTC) if last is not None else None)
        return out

    # --- internals ----------------------------------------------------------------------------

    def _evaluator(self, key: StateKey, limits: Limits) -> ExcursionEvaluator | None:
        evaluator = self._evaluators.get(key)
        if evaluator is not None:
            return evaluator
        config = excursion_config(limits, key[2], self._rules)
        if config is None:
            return None
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            evaluator = ExcursionEvaluator(config)
        else:
            evaluator = ExcursionEvaluator.restore(config, json.loads(snapshot))
            # A rule removed from the configuration must not linger as "active" forever.
            names = {rule.name for rule in config.rules}
            for name in [n for n in evaluator.state.rules if n not in names]:
                del evaluator.state.rules[name]
        self._evaluators[key] = evaluator
        return evaluator

    def _door_open(self, zone: str) -> bool:
        """Is a door-open grace period running for a sensor of the zone?"""
        for key, snapshot in self._snapshots.items():
            if key[0] == zone and key not in self._evaluators and json.loads(snapshot).get("door_start"):
                return True
        return any(key[0] == zone and e.state.door_start is not None for key, e in self._evaluators.items())

    def _active_elsewhere(self, zone: str, rule: str) -> bool:
        """Is any evaluator of the zone still in excursion for ``rule`` (or silent, for gaps)?"""
        for key, snapshot in self._snapshots.items():
            if key[0] == zone and key not in self._evaluators:
                data = json.loads(snapshot)
                if (rule == GAP_RULE and data.get("in_gap")) or data.get("rules", {}).get(rule, {}).get(
                    "active"
                ):
                    return True
        for key, evaluator in self._evaluators.items():
            if key[0] != zone:
                continue
            if rule == GAP_RULE and evaluator.state.in_gap:
                return True
            state = evaluator.state.rules.get(rule)
            if state is not None and state.active:
                return True
        return False

    def _apply(self, zone: str, sensor_id: str, event: ExcursionEvent, limits: Limits) -> None:
        alert = self._open.get((zone, event.rule))
        if event.state == "raised":
            if alert is None:
                alert = self._open_alert(
                    zone, event.rule, "cloud", sensor_id, event.limit, event.started_at, event.at
                )
                alert.peak_value = event.peak if event.peak is not None else (event.value or 0.0)
                alert.last_value = event.value if event.value is not None else alert.peak_value
            else:
                self._breach(
                    alert, event.peak if event.peak is not None else alert.peak_value, event.at, "cloud"
                )
                alert.first_breach_at = min(alert.first_breach_at, event.started_at)
            alert.kind = event.kind
            alert.severity = _SEVERITY.get(event.kind, "warning")
            alert.limit_source = limits.source
        elif (
            event.state == "cleared"
            and event.kind == "gap"
            and alert is not None
            and not self._active_elsewhere(zone, GAP_RULE)
        ):
            self._resolve(alert, event.at, "data flows again")
        self.events.append(RecordedEvent(zone, sensor_id, event, alert))

    def _follow_reading(self, zone: str, reading: SensorReading, at: datetime, limits: Limits) -> None:
        """Peak and last value of the zone's active alerts; resolve those back inside."""
        for (alert_zone, rule), alert in list(self._open.items()):
            if alert_zone != zone or RULE_QUANTITY.get(rule) != reading.quantity:
                continue
            value = reading.value
            if _beyond(rule, value, alert.limit):
                self._breach(alert, value, at, None)
                continue
            alert.last_value = value
            alert.dirty = True
            if rule == "max_temperature_cumulative" or alert.kind == "cumulative":
                continue  # the product has been exposed: only an operator closes it
            if _back_inside(rule, value, alert.limit, limits.hysteresis) and not self._active_elsewhere(
                zone, rule
            ):
                self._resolve(alert, at, "readings back inside the limits")

    def _open_alert(
        self,
        zone: str,
        rule: str,
        source: str,
        sensor_id: str,
        limit: float | None,
        started: datetime,
        at: datetime,
    ) -> Alert:
        alert = Alert(
            site_id=self.site_id,
            zone=zone,
            rule=rule,
            status="open",
            source=source,
            sensor_id=sensor_id,
            limit=limit,
            peak_value=0.0,
            last_value=0.0,
            first_breach_at=utc(started),
            last_breach_at=utc(at),
            kind="gap" if rule == GAP_RULE else "single_event",
            dirty=True,
        )
        self._open[(zone, rule)] = alert
        self.new.append(alert)
        self.transitions.append(Transition(alert, "raised"))
        return alert

    @staticmethod
    def _breach(alert: Alert, value: float, at: datetime, source: str | None) -> None:
        alert.peak_value = _more_extreme(alert.rule, alert.peak_value, value)
        alert.last_value = value
        alert.first_breach_at = min(alert.first_breach_at, at)
        alert.last_breach_at = max(alert.last_breach_at, at)
        if source is not None and alert.source != source:
            alert.source = "both"
        alert.dirty = True

    def _resolve(self, alert: Alert, at: datetime, reason: str | None = None) -> None:
        alert.status = "resolved"
        alert.resolved_at = at
        alert.resolve_reason = reason
        alert.dirty = True
        del self._open[(alert.zone, alert.rule)]
        self._resolved.append(alert)
        self.transitions.append(Transition(alert, "resolved"))


__all__ = [
    "ACTIVE",
    "GAP_RULE",
    "IGNORED_FLAGS",
    "Alert",
    "AlertBook",
    "ColdChainRules",
    "Limits",
    "ProductLimits",
    "RecordedEvent",
    "StateKey",
    "Transition",
    "effective_limits",
    "excursion_config",
]
