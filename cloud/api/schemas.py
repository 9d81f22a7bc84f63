"""API models shared by every feature (pages, the error body) and the one-call summary.

``*Create`` = what a client sends, ``*Public`` = what it gets; each feature keeps its own models in
its ``schemas.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class PublicModel(BaseModel):
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


__all__ = ["EdgeBrief", "ErrorBody", "FieldError", "Page", "Summary"]
