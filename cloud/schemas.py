"""API request/response models (``*Create`` = what a client sends, ``*Public`` = what it gets)."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shelfsense.contract import Ident

T = TypeVar("T")


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


class FieldError(BaseModel):
    """One invalid input: where (``loc`` such as ``body.events.0.at``, ``query.limit``; or ``row`` and
    ``column`` of an imported file) and what is wrong."""

    loc: str | None = None
    row: int | None = Field(default=None, description="imports: 1-based data row")
    column: str | None = Field(default=None, description="imports: the column")
    msg: str


class ErrorBody(BaseModel):
    """Every error response: a human ``detail``, a stable machine ``code`` (``validation_error``,
    ``unauthenticated``, ``forbidden``, ``not_found``, ...) and, for invalid input, ``errors``."""

    detail: str
    code: str
    errors: list[FieldError] | None = Field(
        default=None, description="each invalid field (validation errors only, at most 10)"
    )


class StockItemPublic(_Public):
    site_id: str
    epc: str
    sku: str | None = Field(default=None, description="from the item register; null: unregistered tag")
    lot_code: str | None = None
    location: str | None
    present: bool
    updated_at: datetime


class StockPage(Page[StockItemPublic]):
    by_location: dict[str, int] = Field(
        description="items on hand per location (site, location, product and lot filters applied)"
    )


class AlertPublic(_Public):
    id: int
    site_id: str
    zone: str
    rule: str
    status: str
    source: str = Field(description="cloud, edge or both")
    sensor_id: str | None
    limit: float | None
    peak_value: float
    last_value: float
    first_breach_at: datetime
    last_breach_at: datetime
    resolved_at: datetime | None


class SensorPublic(_Public):
    site_id: str
    sensor_id: str
    quantity: str
    edge_id: str
    zone: str | None
    unit: str
    last_value: float
    last_time: datetime


class SensorReadingPublic(_Public):
    site_id: str
    edge_id: str
    sensor_id: str
    quantity: str
    value: float
    unit: str
    time: datetime
    zone: str | None
    flags: list[str]


class DeviceHealthPublic(_Public):
    device_id: str
    connected: bool
    last_frame_at: datetime | None
    frames_ok: int
    frames_bad: int
    reconnects: int
    at: datetime


class EdgePublic(_Public):
    edge_id: str
    site_id: str
    acked_through: int
    events_received: int
    duplicates: int
    events_implausible: int = Field(
        description="events stored for audit but not applied: dated outside the plausibility window"
    )
    batches: int
    last_seen: datetime | None
    # The edge database's current incarnation (edge.incarnation) and when its stream began.
    incarnation: str | None = None
    incarnation_started_at: datetime | None = None
    # The edge said in its last batch that its disk is full (it holds events, MQTT waits).
    disk_full: bool = False
    disk_full_since: datetime | None = None
    devices: list[DeviceHealthPublic]


class EdgeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: Ident
    name: Ident


class EdgeCreated(BaseModel):
    edge_id: str
    site_id: str
    token: str = Field(description="shown once; only its hash is stored")


class ObservationPublic(_Public):
    site_id: str
    edge_id: str
    reader: str
    antenna: int
    rssi: float | None
    first_seen: datetime
    last_seen: datetime
    count: int
    location: str | None


class PassagePublic(_Public):
    site_id: str
    edge_id: str
    portal: str
    direction: str
    at: datetime
    inside_location: str | None
    outside_location: str | None
    unknown_reason: str | None = Field(
        default=None, description="direction unknown: one_zone, same_time or reader_down (no stock moved)"
    )
    resolved_run_id: int | None = Field(
        default=None, description="the stocktake run that resolved an unknown passage; null = open"
    )


class PassageRow(PassagePublic):
    id: int
    epc: str


class MovementPublic(_Public):
    site_id: str
    edge_id: str
    from_location: str | None
    to_location: str | None
    reason: str
    at: datetime


class MovementRow(MovementPublic):
    """A ledger row of ``GET /api/v1/movements`` (``seq`` is the edge's; cloud adjustments use
    edge ``cloud``)."""

    id: int
    epc: str
    seq: int


class MovementsPage(BaseModel):
    """A page of the ledger; ``next`` continues after its last row (keyset: the cost of a page does
    not grow with the ledger); ``total`` is counted on the first page only (null with a cursor)."""

    items: list[MovementRow]
    total: int | None
    next: str | None = None


class ItemHistory(BaseModel):
    epc: str
    stock: list[StockItemPublic]
    observations: list[ObservationPublic]
    passages: list[PassagePublic]
    movements: list[MovementPublic]


class EdgeBrief(BaseModel):
    edge_id: str
    acked_through: int
    last_seen: datetime | None


class Summary(BaseModel):
    items_on_hand: int
    sensor_readings: int
    tag_observations: int
    passages: int
    passages_direction_unknown: int = Field(description="unknown-direction passages not yet resolved")
    alerts_open: int
    alerts_total: int
    events_received: int
    edges: list[EdgeBrief]


class StocktakeLocationPublic(_Public):
    location: str
    status: str = Field(description="ok, degraded, no_coverage (readers quiet) or idle (nothing to judge)")
    book_count: int
    seen_count: int
    observed_count: int
    read_rate: float | None
    baseline_read_rate: float | None
    confidence: float | None = Field(description="chance a present item would have been seen in K windows")


class StocktakeRunPublic(_Public):
    id: int
    site_id: str
    window_start: datetime
    window_end: datetime
    started_at: datetime
    finished_at: datetime | None
    runner: str
    missing_after_windows: int
    missing: int
    misplaced: int
    unexpected: int
    unknown: int
    new_discrepancies: int = Field(description="opened by this run (delta against the previous run)")
    resolved_discrepancies: int = Field(description="no longer seen by this run")
    locations: list[StocktakeLocationPublic]


class DiscrepancyPublic(_Public):
    id: int
    site_id: str
    kind: str
    epc: str
    location: str
    book_location: str | None
    status: str
    unseen_windows: int
    first_run_id: int
    last_run_id: int
    resolved_run_id: int | None
    decided_by: str | None
    decided_at: datetime | None


class StocktakeRunDetail(StocktakeRunPublic):
    current: list[DiscrepancyPublic] = Field(
        description="discrepancies this run saw (first_run_id = id: new)"
    )
    resolved: list[DiscrepancyPublic] = Field(description="discrepancies this run no longer saw")


__all__ = [
    "AlertPublic",
    "DeviceHealthPublic",
    "DiscrepancyPublic",
    "EdgeBrief",
    "EdgeCreate",
    "EdgeCreated",
    "EdgePublic",
    "ErrorBody",
    "FieldError",
    "ItemHistory",
    "MovementPublic",
    "MovementRow",
    "ObservationPublic",
    "Page",
    "PassagePublic",
    "PassageRow",
    "SensorPublic",
    "SensorReadingPublic",
    "StockItemPublic",
    "StockPage",
    "StocktakeLocationPublic",
    "StocktakeRunDetail",
    "StocktakeRunPublic",
    "Summary",
]
