"""The edge -> cloud sync contract, version 1.

Every event an edge produces is one of the typed models below, discriminated by
``kind``. Events travel in a :class:`Batch` envelope that carries the edge id and
the per-edge, strictly increasing sequence number of each event. The cloud
de-duplicates on ``(edge_id, seq)``, so an edge may resend a batch any number of
times and the effect is the same as sending it once.

The envelope is versioned (``"v": 1``). :func:`parse_batch` refuses any other
version with :class:`UnsupportedContractVersion` *before* looking at the rest of
the body, so an old cloud talking to a newer edge fails with a clear message
instead of a confusing validation error.

Incarnations: an edge's outbox database gets a random ``incarnation`` id when it is created, and
every batch carries it. Sequence numbers count within one incarnation: an edge whose database was
wiped starts again at 1 under a new incarnation, and the cloud opens a new sequence stream for it
(and tells an operator) instead of taking ``seq 1`` for a duplicate of the old ``seq 1``. A batch
without ``incarnation`` (an edge older than this field, or a database created before it) belongs
to the edge's original stream; the cloud refuses a resent sequence number whose content differs
from what it stored, so even such an edge is told (409) rather than silently dropped.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

# The vocabulary (quantities, units, alarm rules) is written once, in shelfsense.vocabulary.
from shelfsense.vocabulary import Quantity, Rule, Unit

CONTRACT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({CONTRACT_VERSION})

EPC_PATTERN = r"^[0-9A-F]{8,124}$"
IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"

Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]

# Every integer lands in a signed 64-bit database column (SQLite INTEGER, PostgreSQL BIGINT).
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1  # tag_observations.count is a 32-bit INTEGER
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


def _convertible_to_utc(value: datetime) -> datetime:
    """Refuse a datetime that cannot be expressed in UTC (``9999-12-31T23:59:59-01:00`` is year
    10000 there); naive values are taken as UTC, as everywhere else. The value is kept as given:
    whether a time is *plausible* is the receiver's call (cloud.ingest.plausibility)."""
    try:
        (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime is outside the range expressible in UTC (years 1-9999)") from None
    return value


Timestamp = Annotated[datetime, AfterValidator(_convertible_to_utc)]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


# EPCs travel as upper-case hex whatever case the reader reported.
Epc = Annotated[str, BeforeValidator(_upper), Field(pattern=EPC_PATTERN, description="EPC as upper-case hex")]


class ContractError(ValueError):
    """A body does not follow the sync contract."""


class UnsupportedContractVersion(ContractError):
    """The envelope's ``v`` is not one this code understands."""


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagObservation(_Event):
    """A tag seen by one reader antenna over an interval (smoothed, not a raw read)."""

    kind: Literal["tag_observation"] = "tag_observation"
    epc: Epc
    reader: Ident
    antenna: Annotated[int, Field(ge=0, le=65535)]
    rssi: Annotated[float | None, Field(ge=-150, le=50)] = None
    first_seen: Timestamp
    last_seen: Timestamp
    count: Annotated[int, Field(ge=1, le=INT32_MAX)]  # reads in one smoothing window
    location: Ident | None = None


# Why a passage's direction is unknown: only one zone saw the tag, both peaked at the same
# instant, or one of the portal's readers was down (disconnected or silent) during the passage.
UnknownDirection = Literal["one_zone", "same_time", "reader_down"]


class PortalPassage(_Event):
    """A tag crossed a portal. ``unknown`` (with ``unknown_reason``) when the readers cannot tell:
    never guessed, no stock movement; the cloud flags it for the stocktake to resolve."""

    kind: Literal["portal_passage"] = "portal_passage"
    epc: Epc
    portal: Ident
    direction: Literal["in", "out", "unknown"]
    at: Timestamp
    inside_location: Ident | None = None
    outside_location: Ident | None = None
    unknown_reason: UnknownDirection | None = None

    @model_validator(mode="after")
    def _reason_only_when_unknown(self) -> PortalPassage:
        if self.unknown_reason is not None and self.direction != "unknown":
            raise ValueError("unknown_reason is only for direction 'unknown'")
        return self


class StockMovement(_Event):
    """An item moved between locations (``None`` = outside the site)."""

    kind: Literal["stock_movement"] = "stock_movement"
    epc: Epc
    from_location: Ident | None = None
    to_location: Ident | None = None
    reason: Literal["portal", "stocktake", "manual", "adjustment"] = "portal"
    at: Timestamp


class SensorReading(_Event):
    """One value of one sensor at the sensor's own time. Units: °C, %RH, %, hPa."""

    kind: Literal["sensor_reading"] = "sensor_reading"
    sensor_id: Ident
    quantity: Quantity
    value: float = Field(allow_inf_nan=False)
    unit: Unit
    time: Timestamp
    zone: Ident | None = None
    flags: tuple[Literal["out_of_range", "stale", "clock_skew"], ...] = ()


class DeviceHealth(_Event):
    """Periodic health of one device connection on the edge."""

    kind: Literal["device_health"] = "device_health"
    device_id: Ident
    connected: bool
    last_frame_at: Timestamp | None = None
    frames_ok: Count = 0
    frames_bad: Count = 0
    reconnects: Count = 0
    at: Timestamp


class LocalAlarm(_Event):
    """A cold-chain limit crossed (``raised``) or back inside (``cleared``), as the edge saw it."""

    kind: Literal["local_alarm"] = "local_alarm"
    zone: Ident
    sensor_id: Ident
    rule: Rule
    state: Literal["raised", "cleared"]
    value: float = Field(allow_inf_nan=False)
    limit: float = Field(allow_inf_nan=False)
    at: Timestamp


Event = Annotated[
    TagObservation | PortalPassage | StockMovement | SensorReading | DeviceHealth | LocalAlarm,
    Field(discriminator="kind"),
]
EVENT_KINDS: tuple[str, ...] = (
    "tag_observation",
    "portal_passage",
    "stock_movement",
    "sensor_reading",
    "device_health",
    "local_alarm",
)

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


class SequencedEvent(BaseModel):
    """One event with its per-edge sequence number (1, 2, 3, ... without holes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: Annotated[int, Field(ge=1, le=INT64_MAX)]
    event: Event


MAX_EVENTS_PER_BATCH = 5000
INCARNATION_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


class Batch(BaseModel):
    """The envelope an edge POSTs to the cloud."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    edge_id: Ident
    created_at: Timestamp
    # The id of the edge database that assigned the sequence numbers (see the module docstring).
    incarnation: Annotated[str | None, Field(pattern=INCARNATION_PATTERN)] = None
    # The edge's disk is full (edge.diskfull): it holds events in memory and acknowledges no MQTT.
    disk_full: bool = False
    events: Annotated[list[SequencedEvent], Field(max_length=MAX_EVENTS_PER_BATCH)]

    @field_validator("events")
    @classmethod
    def _strictly_increasing(cls, events: list[SequencedEvent]) -> list[SequencedEvent]:
        for before, after in itertools.pairwise(events):
            if after.seq <= before.seq:
                raise ValueError(f"sequence numbers must strictly increase: {before.seq} then {after.seq}")
        return events


class BatchAck(BaseModel):
    """The cloud's answer: everything up to ``acked_through`` is durably stored."""

    acked_through: int
    accepted: int
    duplicates: int


def event_json(event: Event) -> str:
    """``event.model_dump_json()``: the same serializer call with the same (default) options, minus
    the Python wrapper that forwards its sixteen keyword arguments (a third of the cost per event,
    paid for every event on the edge and again in the cloud)."""
    return event.__pydantic_serializer__.to_json(event).decode()


def parse_event(data: dict[str, Any]) -> Event:
    """Validate one event dict (used by the edge outbox when reading rows back)."""
    return _event_adapter.validate_python(data)


def check_version(data: Any) -> None:
    """Refuse bodies whose envelope version we do not speak."""
    if not isinstance(data, dict):
        raise ContractError("batch body must be a JSON object")
    version = data.get("v")
    if version is None:
        raise ContractError("batch body has no contract version field 'v'")
    # Only a plain integer can name a version; a list or object is not hashable, and True == 1.
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise UnsupportedContractVersion(
            f"unsupported sync contract version v={version!r}; this side speaks v={supported}"
        )


def parse_batch(body: bytes | str | dict[str, Any]) -> Batch:
    """Parse and validate a batch; raises :class:`ContractError` (or pydantic's ValidationError)."""
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
            raise ContractError(f"batch body is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # hostile, absurdly nested JSON
            raise ContractError("batch body is nested too deeply") from exc
    else:
        data = body
    check_version(data)
    return Batch.model_validate(data)


__all__ = [
    "CONTRACT_VERSION",
    "EVENT_KINDS",
    "INCARNATION_PATTERN",
    "INT64_MAX",
    "Batch",
    "BatchAck",
    "ContractError",
    "DeviceHealth",
    "Event",
    "LocalAlarm",
    "PortalPassage",
    "SensorReading",
    "SequencedEvent",
    "StockMovement",
    "TagObservation",
    "Timestamp",
    "UnknownDirection",
    "UnsupportedContractVersion",
    "ValidationError",
    "check_version",
    "event_json",
    "parse_batch",
    "parse_event",
]
