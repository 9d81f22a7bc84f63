"""What the MQTT firmware payload decoders share: strict JSON, plausible numbers, device times.

One rule for device times, every format: a device clock before 2020-01-01 is unsynchronised (no
SNTP yet, a Tasmota that booted in 1970) and is replaced by the receipt time (``time=None``).

Partly understood payloads: a decoder collects its measurements in a :class:`Decoded` list and
records each value it could not take in ``Decoded.rejected`` (the reason) instead of dropping the
whole message; :func:`finish` raises :class:`DecodeError` only when nothing at all was usable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from devices.errors import DecodeError
from devices.readings import Measurement
from shelfsense.vocabulary import PLAUSIBLE as PLAUSIBLE_RANGES

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MIN_DEVICE_TIME",
    "PLAUSIBLE_RANGES",
    "Decoded",
    "as_utc",
    "device_time",
    "epoch_time",
    "finish",
    "number",
    "optional_time",
    "parse_json_object",
    "parse_time",
    "text_number",
]

MAX_PAYLOAD_BYTES: Final = 64 * 1024

# Physically plausible bounds per quantity (inclusive): shelfsense.vocabulary's, the same the
# edge's quality flags use. Garbage (0xFFFF/10, -273, 1e9) is refused.
# Device clocks before this are unsynchronised: use the receipt time.
MIN_DEVICE_TIME: Final = datetime(2020, 1, 1, tzinfo=UTC)
_MIN_EPOCH_S: Final = MIN_DEVICE_TIME.timestamp()
# Tasmota before 6.x wrote ``Time`` as "2018.02.15 01:00:50" (docs: JSON Status Responses).
_DOTTED_TIME: Final = re.compile(r"\d{4}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2}")


class Decoded(list[Measurement]):
    """The measurements of one message; ``rejected`` says why each other value was not taken."""

    __slots__ = ("rejected",)

    def __init__(self) -> None:
        super().__init__()
        self.rejected: list[str] = []

    def take(self, make: Callable[[], Measurement | None]) -> None:
        """Append ``make()`` (unless None); a DecodeError it raises is recorded, not propagated."""
        try:
            measurement = make()
        except DecodeError as exc:
            self.rejected.append(str(exc))
            return
        if measurement is not None:
            self.append(measurement)


def finish(out: Decoded) -> Decoded:
    """``out`` if anything in it is usable (or nothing was wrong); else the reasons as DecodeError."""
    if out.rejected and not out:
        raise DecodeError("; ".join(out.rejected))
    return out


def _refuse_constant(name: str) -> Any:
    raise DecodeError(f"payload contains {name}, which is not a number")


def parse_json_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    # orjson is strict RFC 8259 (no NaN/Infinity, valid UTF-8 only, nesting capped): every payload
    # it accepts, json.loads reads the same way. What it refuses takes the json.loads path, which
    # explains the error or (1e999, integers beyond 64 bits) lets the value checks refuse it.
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        data = _parse_json_slowly(payload)
    if not isinstance(data, dict):
        raise DecodeError(f"payload must be a JSON object, got {type(data).__name__}")
    return data


def _parse_json_slowly(payload: bytes) -> Any:
    """json.loads of a payload orjson refused, with a DecodeError that says what is wrong."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"payload is not JSON: {exc.msg} at char {exc.pos}") from exc
    except RecursionError as exc:
        raise DecodeError("payload JSON is nested too deeply") from exc


def number(quantity: str, raw: Any, where: str) -> float:
    """A finite, plausible float for ``quantity`` or DecodeError. ``bool`` is not a number here."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise DecodeError(f"{where}: expected a number, got {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise DecodeError(f"{where}: {raw!r} is not finite")
    low, high = PLAUSIBLE_RANGES[quantity]
    if not low <= value <= high:
        raise DecodeError(f"{where}: {value} outside the plausible {quantity} range {low}..{high}")
    return value


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def device_time(value: datetime) -> datetime | None:
    """The one rule: an aware UTC device time, or None (= receipt time) if before 2020."""
    value = as_utc(value)
    return None if value < MIN_DEVICE_TIME else value


def parse_time(raw: Any, where: str, epoch_unit_s: float) -> datetime | None:
    """ISO 8601 (naive taken as UTC), Tasmota's dotted form, or ``epoch_unit_s`` seconds since 1970.

    Passed through :func:`device_time`; raises DecodeError when the text is not a time at all.
    """
    try:
        if isinstance(raw, str):
            if _DOTTED_TIME.fullmatch(raw):
                return device_time(datetime.strptime(raw, "%Y.%m.%d %H:%M:%S"))
            return device_time(datetime.fromisoformat(raw))
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return device_time(datetime.fromtimestamp(raw * epoch_unit_s, tz=UTC))
    except (ValueError, OverflowError, OSError) as exc:
        raise DecodeError(f"{where}: unreadable time {raw!r}: {exc}") from exc
    raise DecodeError(f"{where}: unreadable time {raw!r}")


def epoch_time(raw: Any) -> datetime | None:
    """Epoch seconds (Shelly ``params.ts``, Ruuvi ``ts``); None (= receipt time) if absent or unsynced."""
    if (
        isinstance(raw, bool)
        or not isinstance(raw, (int, float))
        or not math.isfinite(raw)
        or raw < _MIN_EPOCH_S
    ):
        return None
    return parse_time(raw, "ts", 1.0)


def optional_time(out: Decoded, raw: Any, where: str, epoch_unit_s: float) -> datetime | None:
    """A device time if present and readable; unreadable counts as rejected and means receipt time."""
    if raw is None:
        return None
    try:
        return parse_time(raw, where, epoch_unit_s)
    except DecodeError as exc:
        out.rejected.append(str(exc))
        return None


_TEXT_NUMBER_MAX_BYTES: Final = 64


def text_number(quantity: str, payload: bytes, where: str) -> float:
    """A value published as plain text (ESPHome state, Shelly Gen1 ``sensor/temperature``)."""
    if len(payload) > _TEXT_NUMBER_MAX_BYTES:
        raise DecodeError(f"{where}: a state of {len(payload)} bytes is not a number")
    try:
        raw = float(bytes(payload).decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"{where}: {bytes(payload)[:32]!r} is not a number") from exc
    return number(quantity, raw, where)
