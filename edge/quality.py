"""Sensor reading quality: out-of-range and stale values are flagged, never silently kept.

A reading keeps its source timestamp (the sensor's own time when its payload has one). It is
flagged (``SensorReading.flags``, part of the sync contract) when:

- ``out_of_range``: the value is outside what the quantity can physically be, or what any probe
  we support can measure (e.g. a disconnected DS18B20 reporting -127 degC, humidity 104 %RH).
  Such a reading is stored and synced (the cloud sees the broken probe) but raises no local
  cold-chain alarm: a dead probe is a device fault, not a temperature excursion;
- ``stale``: its source time is older than ``stale_after_s`` when the edge receives it (a
  retained MQTT message of a dead sensor, a bridge replaying old values). It is history, not the
  current state of the zone.

Pure; the agent judges every reading with one :class:`Judge` per batch before it is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shelfsense.contract import SensorReading

# Plausible value range per quantity (contract units), the one the MQTT decoders refuse beyond.
from shelfsense.vocabulary import PLAUSIBLE

_ANYTHING = (float("-inf"), float("inf"))


def quality_flags(
    reading: SensorReading, now: datetime, stale_after_s: float, skew_tolerance_s: float | None = None
) -> tuple[str, ...]:
    """The quality flags ``reading`` deserves at ``now`` (its existing flags not included).

    With ``skew_tolerance_s``, a source time further ahead of ``now`` than that is ``clock_skew``
    (the device's clock is wrong).
    """
    return Judge(now, stale_after_s, skew_tolerance_s).flags(reading)


def flag_reading(reading: SensorReading, now: datetime, stale_after_s: float) -> SensorReading:
    """``reading`` with its quality flags added (the same object when there is nothing to add)."""
    return Judge(now, stale_after_s).flag(reading)


class Judge:
    """Quality flags judged at one instant: built once per batch, so a reading costs comparisons."""

    __slots__ = ("ahead_after", "stale_before")

    def __init__(self, now: datetime, stale_after_s: float, skew_tolerance_s: float | None = None) -> None:
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        self.stale_before = now - timedelta(seconds=stale_after_s)
        self.ahead_after = None if skew_tolerance_s is None else now + timedelta(seconds=skew_tolerance_s)

    def flags(self, reading: SensorReading) -> tuple[str, ...]:
        flags: list[str] = []
        at = reading.time if reading.time.tzinfo else reading.time.replace(tzinfo=UTC)  # naive = UTC
        if self.ahead_after is not None and at > self.ahead_after:
            flags.append("clock_skew")
        low, high = PLAUSIBLE.get(reading.quantity, _ANYTHING)
        if not low <= reading.value <= high:
            flags.append("out_of_range")
        if at < self.stale_before:
            flags.append("stale")
        return tuple(flags)

    def flag(self, reading: SensorReading) -> SensorReading:
        """``reading`` with its new flags added (the same object when there is nothing to add)."""
        at, (low, high) = reading.time, PLAUSIBLE.get(reading.quantity, _ANYTHING)
        if (
            at.tzinfo is not None  # naive times take the full path (naive = UTC)
            and low <= reading.value <= high
            and at >= self.stale_before
            and (self.ahead_after is None or at <= self.ahead_after)
        ):
            return reading  # the common case, without building any list
        new = [f for f in self.flags(reading) if f not in reading.flags]
        if not new:
            return reading
        return reading.model_copy(update={"flags": (*reading.flags, *new)})


__all__ = ["PLAUSIBLE", "Judge", "flag_reading", "quality_flags"]
