"""Money in the currency's precision: ``38.4``, not ``38.400000000000006``.

Amounts are computed in binary floats (the planner's arithmetic); what is stored, answered and
exported is rounded half-up to the currency's minor unit (ISO 4217: 2 decimals for most, 0 for
JPY or KRW, 3 for the dinars).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# ISO 4217 currencies whose minor unit is not 2 decimals (the common ones).
_MINOR_UNIT_DIGITS = {
    **dict.fromkeys(("JPY", "KRW", "VND", "CLP", "ISK", "UGX", "PYG", "XAF", "XOF"), 0),
    **dict.fromkeys(("BHD", "KWD", "OMR", "JOD", "TND", "LYD", "IQD"), 3),
}


def decimals(currency: str) -> int:
    """Digits after the decimal point of ``currency`` (ISO 4217 code)."""
    return _MINOR_UNIT_DIGITS.get(currency.upper(), 2)


def money(value: float, currency: str) -> float:
    """``value`` rounded half-up to the currency's minor unit (the shortest float that prints so)."""
    step = Decimal(1).scaleb(-decimals(currency))
    return float(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP))


def round_money(row: Mapping[str, Any], keys: Iterable[str], currency: str) -> dict[str, Any]:
    """``row`` with its money ``keys`` rounded (None and missing keys left alone)."""
    out = dict(row)
    for key in keys:
        if isinstance(out.get(key), int | float):
            out[key] = money(out[key], currency)
    return out


__all__ = ["decimals", "money", "round_money"]
