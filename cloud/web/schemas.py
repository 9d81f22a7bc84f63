"""Response models of the page's own endpoints (``/web/session``, ``/web/login``, ``/web/api/...``).

They stay in the public ``openapi.json`` (typed, validated by FastAPI on every answer) rather than
being hidden: the ``/web/api`` helpers also answer API tokens, and the site-scoping test walks the
live schema, so a hidden route would escape it (docs/api.md, "The page's endpoints").
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class SessionInfo(BaseModel):
    user: str
    role: str = Field(description="viewer, operator or admin")
    csrf: str = Field(description="send it as the X-CSRF-Token header of every state-changing request")


class LogoutResult(BaseModel):
    ended: bool = Field(description="false: there was no session cookie")


class SgtinCandidates(BaseModel):
    gtin: str = Field(description="the GTIN-14")
    serial: int
    candidates: list[str] = Field(description="SGTIN-96 EPCs (hex), one per company prefix length tried")
    known: list[str] = Field(description="the candidates this cloud has seen on the user's sites")


class RegisteredItem(BaseModel):
    sku: str
    lot_code: str | None
    name: str
    gtin: str | None
    expiry: date | None = Field(description="the lot's printed expiry")


class ItemIdentity(BaseModel):
    epc: str = Field(description="upper-case hex")
    scheme: str = Field(description='tag encoding, e.g. "sgtin-96", or "raw" when not GS1-encoded')
    uri: str = Field(description="pure identity URI (urn:epc:id:...; urn:epc:raw:... when raw)")
    gtin: str | None
    serial: str | None
    registered: RegisteredItem | None = Field(description="the item's master data, when registered")


class ZoneLimitsRow(BaseModel):
    site_id: str
    zone: str
    min_temp_c: float | None = Field(description="°C")
    max_temp_c: float | None = Field(description="°C")
    max_humidity: float | None = Field(description="%RH")


__all__ = [
    "ItemIdentity",
    "LogoutResult",
    "RegisteredItem",
    "SessionInfo",
    "SgtinCandidates",
    "ZoneLimitsRow",
]
