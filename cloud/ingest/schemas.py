"""Edge API models: sync state, device health, registration."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from cloud.api.schemas import PublicModel
from shelfsense.contract import Ident


class DeviceHealthPublic(PublicModel):
    device_id: str
    connected: bool
    last_frame_at: datetime | None
    frames_ok: int
    frames_bad: int
    reconnects: int
    at: datetime


class EdgePublic(PublicModel):
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


__all__ = ["DeviceHealthPublic", "EdgeCreate", "EdgeCreated", "EdgePublic"]
