"""Response models of the lots API (list, FEFO, detail, report, zone MKT): what
``cloud.lots.evidence.summary`` and ``cloud.lots.report.report_dict`` return."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from cloud.api.schemas import Page


class LotLocation(BaseModel):
    site_id: str
    location: str | None
    quantity: int


class FefoLot(BaseModel):
    fefo_rank: int | None = Field(description="1 = pick first; null: not on hand")
    lot_id: str
    lot_code: str
    expiry: date | None = Field(description="the printed expiry")
    dynamic_expiry: datetime | None = Field(description="from the temperature history and shelf-life model")
    effective_expiry: datetime | None = Field(description="the earlier of printed and dynamic")
    expiry_source: str | None
    expired: bool
    on_hand: int
    locations: list[LotLocation]


class LotSummary(FefoLot):
    sku: str
    items: int = Field(description="items ever seen in this lot")
    mkt_c: float | None = Field(description="mean kinetic temperature over the window, °C")
    observed_hours: float
    time_above_max_s: float
    time_below_min_s: float
    remaining_shelf_life_days: float | None
    consumed_shelf_life_days: float | None


class FefoProduct(BaseModel):
    product: str
    lots: list[FefoLot]


class FefoAnswer(BaseModel):
    products: list[FefoProduct]
    next: str | None = Field(default=None, description="`after` for the following page (null: the last)")


class Stay(BaseModel):
    site_id: str
    location: str | None
    start: datetime
    end: datetime | None = Field(description="null: still there")
    items: int


class ExcursionEpisode(BaseModel):
    direction: Literal["above", "below"]
    limit_c: float
    start: datetime
    end: datetime
    duration_s: float
    peak_c: float
    site_id: str
    location: str | None


class Excursions(BaseModel):
    time_above_max_s: float
    time_below_min_s: float
    episodes: list[ExcursionEpisode]


class LotDetail(LotSummary):
    since: datetime | None
    until: datetime | None
    activation_energy_kj: float
    stays: list[Stay]
    excursions: Excursions


class ShelfLifeModel(BaseModel):
    kind: str
    nominal_days: float
    reference_temp_c: float
    activation_energy_kj: float | None
    q10: float | None


class ProductBrief(BaseModel):
    sku: str
    name: str | None
    storage_temp_min_c: float | None
    storage_temp_max_c: float | None
    shelf_life_model: ShelfLifeModel | None


class ReportWindow(BaseModel):
    since: datetime | None
    until: datetime | None
    activation_energy_kj: float


class ShelfLife(BaseModel):
    consumed_days: float
    remaining_days: float
    dynamic_expiry: datetime
    printed_expiry: datetime | None
    effective_expiry: datetime | None


class ReportReading(BaseModel):
    time: datetime
    site_id: str
    zone: str
    sensor_id: str
    value_c: float


class LotReport(BaseModel):
    lot: LotSummary
    product: ProductBrief
    window: ReportWindow
    generated_at: datetime
    mkt_c: float | None
    observed_hours: float
    stays: list[Stay]
    excursions: Excursions
    shelf_life: ShelfLife | None
    readings: list[ReportReading]


class ZoneMkt(BaseModel):
    zone: str
    site_id: str | None
    since: datetime
    until: datetime
    activation_energy_kj: float
    mkt_c: float | None = Field(description="null: no reading in the window")
    readings: int
    observed_hours: float
    min_c: float | None
    max_c: float | None


LotPage = Page[LotSummary]

__all__ = ["FefoAnswer", "LotDetail", "LotPage", "LotReport", "LotSummary", "ZoneMkt"]
