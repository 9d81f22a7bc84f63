"""Stock API models: items on hand, observations, passages, the movements ledger, an item's history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from cloud.api.schemas import Page, PublicModel


class StockItemPublic(PublicModel):
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


class ObservationPublic(PublicModel):
    site_id: str
    edge_id: str
    reader: str
    antenna: int
    rssi: float | None
    first_seen: datetime
    last_seen: datetime
    count: int
    location: str | None


class PassagePublic(PublicModel):
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


class MovementPublic(PublicModel):
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


__all__ = [
    "ItemHistory",
    "MovementPublic",
    "MovementRow",
    "ObservationPublic",
    "PassagePublic",
    "PassageRow",
    "StockItemPublic",
    "StockPage",
]
