"""Reading one demand series from text, for ``shelfsense forecast`` and hand checks by planners.

Two layouts are accepted: one quantity per line, or ``date,qty`` lines (ISO dates). Dated rows are summed
per day and missing days count as zero demand, because a day without an outbound movement *is* a day
without demand. An optional header line (``date,qty``) and blank lines are ignored.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from cloud.replenish.errors import ForecastInputError


def _quantity(text: str, lineno: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ForecastInputError(f"line {lineno}: quantity {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ForecastInputError(
            f"line {lineno}: quantity must be a finite number >= 0, got {text.strip()!r}"
        )
    return value


def _is_header(fields: list[str]) -> bool:
    try:
        float(fields[-1])
    except ValueError:
        return True
    return False


def parse_series(text: str) -> list[float]:
    """Daily demand from ``text``; raises :class:`ForecastInputError` naming the offending line."""
    rows = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if rows and _is_header([f.strip() for f in rows[0][1].split(",")]):
        rows = rows[1:]
    if not rows:
        raise ForecastInputError("no demand values in the file")
    widths = {len(line.split(",")) for _, line in rows}
    if widths == {1}:
        return [_quantity(line, n) for n, line in rows]
    if widths != {2}:
        raise ForecastInputError("each line must be 'qty' or 'date,qty' (not a mix)")
    per_day: dict[date, float] = {}
    for n, line in rows:
        day_text, qty_text = (f.strip() for f in line.split(","))
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise ForecastInputError(f"line {n}: {day_text!r} is not an ISO date (YYYY-MM-DD)") from None
        per_day[day] = per_day.get(day, 0.0) + _quantity(qty_text, n)
    first, last = min(per_day), max(per_day)
    span = (last - first).days + 1
    return [per_day.get(first + timedelta(days=i), 0.0) for i in range(span)]
