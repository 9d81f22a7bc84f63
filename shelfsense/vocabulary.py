"""The sensor vocabulary, written once: quantities, their units and plausible ranges, limit rules.

Every layer reads it from here: the device codecs (``devices``: plausibility of decoded values),
the sync contract (``shelfsense.contract``: the ``quantity``/``unit`` literals), the config (the
sensor map's ``quantity``), the edge (``edge.quality`` out-of-range flags, ``edge.alarms``) and
the cloud's alert rules (the same breached/cleared-with-hysteresis test). It imports nothing of
ours, so ``devices`` (which imports nothing else of ours) may use it.

Plausible ranges (inclusive) are decided once, here. They are the widest a real sensor we support
reports, not one probe's spec: a value outside is a broken probe or a corrupted frame, never a
measurement. Temperature: the widest datasheet ranges are the DS18B20 (-55..+125 degC) and the
SHT4x (-40..+125 degC), so 125 is the top; -60 leaves margin under the DS18B20 for a freezer
probe's calibration offset. A disconnected DS18B20 (-127, "no probe") and Zigbee2MQTT values such
as 127 degC are outside it everywhere. Humidity and battery are percentages; link quality is
Zigbee's 0..255 LQI; pressure is ground-level hPa (the BME280's 300..1100 hPa).
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple, get_args

__all__ = [
    "PLAUSIBLE",
    "QUANTITIES",
    "QUANTITY_UNITS",
    "RULES",
    "RULE_QUANTITY",
    "Direction",
    "Quantity",
    "QuantitySpec",
    "Rule",
    "Unit",
    "breached",
    "cleared",
    "is_plausible",
    "rule_direction",
]

Quantity = Literal["temperature", "humidity", "battery", "linkquality", "pressure"]
Unit = Literal["degC", "%RH", "%", "hPa", "lqi"]
# The edge's local alarm rules (the cloud adds instant/cumulative variants of them).
Rule = Literal["max_temperature", "min_temperature", "max_humidity"]
Direction = Literal["above", "below"]


class QuantitySpec(NamedTuple):
    unit: Unit
    low: float
    high: float


QUANTITIES: Final[dict[Quantity, QuantitySpec]] = {
    "temperature": QuantitySpec("degC", -60.0, 125.0),  # DS18B20 / SHT4x: see the module docstring
    "humidity": QuantitySpec("%RH", 0.0, 100.0),
    "battery": QuantitySpec("%", 0.0, 100.0),
    "linkquality": QuantitySpec("lqi", 0.0, 255.0),
    "pressure": QuantitySpec("hPa", 300.0, 1100.0),
}
# Views of the table, for the callers that need only one column.
QUANTITY_UNITS: Final[dict[str, str]] = {q: spec.unit for q, spec in QUANTITIES.items()}
PLAUSIBLE: Final[dict[str, tuple[float, float]]] = {q: (s.low, s.high) for q, s in QUANTITIES.items()}

RULE_QUANTITY: Final[dict[Rule, Quantity]] = {
    "max_temperature": "temperature",
    "min_temperature": "temperature",
    "max_humidity": "humidity",
}
RULES: Final = tuple(get_args(Rule))


def is_plausible(quantity: str, value: float) -> bool:
    """Whether ``value`` can be a real measurement of ``quantity`` (unknown quantities: any)."""
    bounds = PLAUSIBLE.get(quantity)
    return bounds is None or bounds[0] <= value <= bounds[1]


def rule_direction(rule: str) -> Direction | None:
    """``below`` for ``min_*`` rules, ``above`` for ``max_*`` (cloud variants included), else None."""
    return "below" if rule.startswith("min_") else "above" if rule.startswith("max_") else None


def breached(rule: str, value: float, limit: float) -> bool:
    """Whether ``value`` is beyond ``limit`` for ``rule`` (strictly: the limit itself is inside)."""
    return value < limit if rule_direction(rule) == "below" else value > limit


def cleared(rule: str, value: float, limit: float, hysteresis: float) -> bool:
    """Whether ``value`` is back inside ``limit`` by ``hysteresis`` (so a probe hovering at the limit
    does not flap between raised and cleared)."""
    if rule_direction(rule) == "below":
        return value >= limit + hysteresis
    return value <= limit - hysteresis


# The literals are the types; the table must spell the same set (checked at import, cheaply).
assert set(get_args(Quantity)) == set(QUANTITIES), "Quantity literal and QUANTITIES differ"
assert {s.unit for s in QUANTITIES.values()} == set(get_args(Unit)), "Unit literal and units differ"
assert set(RULE_QUANTITY) == set(RULES), "Rule literal and RULE_QUANTITY differ"
