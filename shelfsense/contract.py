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
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

# The vocabulary (quantities, units, alarm rules) is written once, in shelfsense.vocabulary.
from shelfsense.vocabulary import Quantity, Rule, Unit

CONTRACT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({CONTRACT_VERSION})

EPC_PATTERN = r"^[0-9A-F]{8,124}$"
IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"

Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]


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
    first_seen: datetime
    last_seen: datetime
    count: Annotated[int, Field(ge=1)]
    location: Ident | None = None


class PortalPassage(_Event):
    """A tag crossed a portal. ``unknown`` when only one zone saw it: never guessed."""

    kind: Literal["portal_passage"] = "portal_passage"
    epc: Epc
    portal: Ident
    direction: Literal["in", "out", "unknown"]
    at: datetime
    inside_location: Ident | None = None
    outside_location: Ident | None = None


class StockMovement(_Event):
    """An item moved between locations (``None`` = outside the site)."""

    kind: Literal["stock_movement"] = "stock_movement"
    epc: Epc
    from_location: Ident | None = None
    to_location: Ident | None = None
    reason: Literal["portal", "stocktake", "manual", "adjustment"] = "portal"
    at: datetime


class SensorReading(_Event):
    """One value of one sensor at the sensor's own time. Units: °C, %RH, %, hPa."""

    kind: Literal["sensor_reading"] = "sensor_reading"
    sensor_id: Ident
    quantity: Quantity
    value: float = Field(allow_inf_nan=False)
    unit: Unit
    time: datetime
    zone: Ident | None = None
    flags: tuple[Literal["out_of_range", "stale", "clock_skew"], ...] = ()


class DeviceHealth(_Event):
    """Periodic health of one device connection on the edge."""

    kind: Literal["device_health"] = "device_health"
    device_id: Ident
    connected: bool
    last_frame_at: datetime | None = None
    frames_ok: Annotated[int, Field(ge=0)] = 0
    frames_bad: Annotated[int, Field(ge=0)] = 0
    reconnects: Annotated[int, Field(ge=0)] = 0
    at: datetime


class LocalAlarm(_Event):
    """A cold-chain limit crossed (``raised``) or back inside (``cleared``), as the edge saw it."""

    kind: Literal["local_alarm"] = "local_alarm"
    zone: Ident
    sensor_id: Ident
    rule: Rule
    state: Literal["raised", "cleared"]
    value: float = Field(allow_inf_nan=False)
    limit: float = Field(allow_inf_nan=False)
    at: datetime


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

    seq: Annotated[int, Field(ge=1)]
    event: Event


MAX_EVENTS_PER_BATCH = 5000
INCARNATION_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"


class Batch(BaseModel):
    """The envelope an edge POSTs to the cloud."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    edge_id: Ident
    created_at: datetime
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
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise UnsupportedContractVersion(
            f"unsupported sync contract version v={version!r}; this side speaks v={supported}"
        )


def parse_batch(body: bytes | str | dict[str, Any]) -> Batch:
    """Parse and validate a batch; raises :class:`ContractError` (or pydantic's ValidationError)."""
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
    "UnsupportedContractVersion",
    "ValidationError",
    "check_version",
    "event_json",
    "parse_batch",
    "parse_event",
]
