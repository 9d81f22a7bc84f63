"""Response models of the replenishment API (proposals, runs, forecasts, KPIs, imports).

They document in ``openapi.json`` what ``cloud.replenish.service`` and ``cloud.replenish.kpis``
return; FastAPI validates each answer against them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from cloud.api.schemas import Page

ProposalKind = Literal["purchase", "transfer", "markdown"]
ProposalStatus = Literal["open", "approved", "rejected", "exported"]


class ProposalDraft(BaseModel):
    """A proposal as the planner makes it (a dry run's answer has no ``id``/``status`` yet)."""

    id: int | None = None
    site_id: str
    kind: ProposalKind
    status: ProposalStatus | None = None
    need_key: str = Field(description="what need this answers; one live proposal per need")
    sku: str
    location_id: str | None
    source_location: str | None = Field(description="transfers: where the stock comes from")
    supplier_id: str | None
    group_ref: str | None = Field(description="purchase lines of one order share it")
    quantity: float
    unit_cost: float
    amount: float = Field(description="quantity x unit cost, in the site currency")
    order_amount: float = Field(description="the whole order's value (all its lines)")
    order_by: date | None
    expected_arrival: date | None
    need_by: date | None
    late: bool
    reasoning: dict[str, Any] = Field(
        description="the planner's figures (forecast, safety stock, reorder point, position, ...)"
    )
    approvals_required: list[tuple[int, str]] = Field(description="[level, role] steps in order")
    approved_level: int | None = None
    created_at: datetime | None = None
    export_attempts: int | None = None


class ProposalPublic(ProposalDraft):
    id: int
    status: ProposalStatus
    approved_level: int
    created_at: datetime
    decided_at: datetime | None
    exported_at: datetime | None
    export_attempts: int
    export_error: str | None


class ApprovalPublic(BaseModel):
    id: int
    proposal_id: int
    level: int
    role: str
    decision: Literal["approve", "reject"]
    user_name: str
    comment: str
    at: datetime


class ProposalDetail(ProposalPublic):
    approvals: list[ApprovalPublic]


class SuppressedNeed(BaseModel):
    """A need an existing live proposal already covers, with what it still leaves short."""

    sku: str
    location_id: str | None
    open_proposals: list[Any]
    shortfall: float


class PlanAlert(BaseModel, extra="allow"):
    """A planning alert (dead stock, slow mover, ...); further keys depend on ``kind``."""

    kind: str
    sku: str
    location_id: str | None


class RuleNotification(BaseModel):
    channels: list[str]
    title: str


class SiteRunPublic(BaseModel):
    site_id: str
    items: int = Field(description="series planned")
    proposals: list[ProposalDraft]
    suppressed: list[SuppressedNeed]
    alerts: list[PlanAlert]
    notify: list[RuleNotification]


class RunResult(BaseModel):
    today: date
    dry_run: bool
    history_days: int
    series: int
    sites: list[SiteRunPublic]
    unknown_channels: list[str]


class ForecastPublic(BaseModel):
    site_id: str
    location_id: str
    sku: str
    run_date: date
    method: str
    demand_class: str
    mae: float | None = Field(description="null: not enough history to measure")
    bias: float | None = Field(description="mean forecast minus actual: positive = over-forecast")
    mase: float | None
    forecast: float = Field(description="units per day")
    history_days: int
    computed_at: datetime


class KpiFigures(BaseModel):
    outbound_units: float
    cogs: float = Field(description="cost of goods sent out (money)")
    average_inventory_units: float
    average_inventory_value: float
    turnover: float | None
    turnover_units: float | None
    days_of_cover: float | None
    stock_out_days: int


class KpiRow(KpiFigures):
    site_id: str
    location_id: str | None
    sku: str
    unit_cost: float | None
    closing_units: float
    fill_rate: float | None


class KpiTotals(KpiFigures):
    """The figures over every row."""


class KpiFilters(BaseModel):
    site: str | None
    product: str | None
    location: str | None


class OnTimeDelivery(BaseModel):
    received_orders: int
    on_time_orders: int
    rate: float | None


class KpiReport(BaseModel):
    since: date
    until: date = Field(description="the day after the last one")
    days: int
    filters: KpiFilters
    items: list[KpiRow]
    totals: KpiTotals
    on_time_delivery: OnTimeDelivery


class DeadStockRow(BaseModel):
    """One lot of one product at one location that is dead stock (cloud.replenish.dead_stock)."""

    site_id: str
    location: str
    sku: str
    name: str = Field(description="the product's name (its SKU when it has none)")
    lot_code: str | None
    quantity: int = Field(description="units on hand there")
    received_at: datetime = Field(description="latest receipt of a unit on hand (from outside or a dock)")
    last_outbound_at: datetime | None = Field(description="latest unit of the lot shipped from there")
    days_since_receipt: float
    days_since_outbound: float | None = Field(description="null: never shipped from this location")
    unit_cost: float | None = Field(description="the preferred supplier's, in the site currency")
    value: float | None = Field(description="quantity x unit cost, rounded to the currency's minor unit")


class DeadStockReport(BaseModel):
    currency: str = Field(description="ISO 4217 code of unit_cost and value")
    decimals: int = Field(description="the currency's minor unit digits (how values are rounded)")
    receipt_days: float = Field(description="dead only when received at least this many days ago")
    outbound_days: float = Field(description="... and nothing shipped for at least this many days")
    total_value: float = Field(description="sum of the rows' values, rounded")
    items: list[DeadStockRow]


class ImportResult(BaseModel):
    imported: int = Field(description="rows upserted (all rows or none)")


class ExportedResult(BaseModel):
    exported: list[int] = Field(description="ids now marked exported")


ProposalPage = Page[ProposalPublic]
ForecastPage = Page[ForecastPublic]

__all__ = [
    "ExportedResult",
    "ForecastPage",
    "ImportResult",
    "KpiReport",
    "ProposalDetail",
    "ProposalPage",
    "ProposalPublic",
    "RunResult",
]
