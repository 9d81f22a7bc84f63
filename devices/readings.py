"""Typed readings the codecs produce: what the edge turns into contract events.

The vocabulary of :class:`Measurement` (quantity and unit) is :mod:`shelfsense.vocabulary`, the
one ``shelfsense.contract.SensorReading`` uses too (that module imports nothing of ours, so
``devices`` stays free of the contract and the config).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from shelfsense.vocabulary import QUANTITY_UNITS

__all__ = ["QUANTITY_UNITS", "Measurement", "TagRead"]


@dataclass(frozen=True, slots=True)
class TagRead:
    """One raw inventory read of a UHF tag (not smoothed).

    ``epc`` is upper-case hex; ``rssi`` is in dBm (``None`` when the reader does not report it);
    ``pc`` is the Gen2 protocol-control word (bits 15..11 = EPC length in 16-bit words);
    ``antenna`` is 1 for the single-port M100/R200 modules.
    """

    epc: str
    rssi: float | None
    pc: int
    antenna: int = 1


class Measurement(NamedTuple):
    """One sensor value in contract units (immutable; a NamedTuple because every MQTT message builds
    one per quantity, and a frozen dataclass costs three times as much to build).

    ``time`` is the sensor's own timestamp when its payload carries one, always timezone-aware UTC;
    ``None`` means "now" (the caller stamps it on receipt). Firmware that reports a naive local time
    (Tasmota's ``"Time"``) is *assumed to run on UTC*: a device set to another zone shows up as clock
    skew downstream rather than being silently shifted by a guessed offset.

    ``channel`` tells several sensors in one payload apart (Tasmota ``"DS18B20-1"``, ``"AM2301"``,
    or ``"DS18B20:<Id>"`` when the probe reports its stable 1-Wire id); ``None`` for single-sensor
    payloads.
    """

    quantity: str
    value: float
    unit: str
    time: datetime | None = None
    channel: str | None = None
