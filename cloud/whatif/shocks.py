"""Shocks compiled to per-day, per-item arrays the engine indexes (no Python per lane or per day)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cloud.whatif.model import SiteModel
from cloud.whatif.scenario import (
    ColdRoomFailure,
    DemandShock,
    LeadTimeShock,
    PriceShock,
    RouteClosed,
    SupplierStop,
)

BoolArray = NDArray[np.bool_]


@dataclass(slots=True)
class ShockPlan:
    """``(days, I)`` factors and masks; events as ``(day, item mask, ...)`` lists."""

    demand_factor: NDArray[np.float32]
    price_factor: NDArray[np.float32]
    lead_factor: NDArray[np.float32]
    supplier_stopped_until: NDArray[np.int32]  # end day of the stop covering (day, item), 0 = none
    closed: BoolArray  # (days, I): no receipts, no transfers in or out
    spoil: list[tuple[int, BoolArray]] = field(default_factory=list)
    prebuy: list[tuple[int, BoolArray, float]] = field(default_factory=list)  # (day, items, cover days)

    @property
    def longest_delay(self) -> int:
        """The most days a receipt can be held back by a stop (sizes the engine's pipeline)."""
        stops = int(self.supplier_stopped_until.max(initial=0))
        closed_days = int(self.closed.sum(axis=0).max(initial=0))
        return max(stops, closed_days)


def _selected(model: SiteModel, shock: Any) -> BoolArray:
    n_loc = len(model.locations)
    sku_ok = np.ones(len(model.skus), dtype=bool)
    if shock.skus:
        sku_ok &= [any(fnmatch.fnmatchcase(s, pat) for pat in shock.skus) for s in model.skus]
    if shock.categories:
        sku_ok &= np.isin(model.categories, shock.categories)
    loc_ok = np.ones(n_loc, dtype=bool)
    if shock.locations:
        loc_ok = np.isin(model.locations, shock.locations)
    return (sku_ok[:, None] & loc_ok[None, :]).reshape(-1)


def _of_supplier(model: SiteModel, supplier: str | None) -> BoolArray:
    if supplier is None:
        return np.array([i.supplier is not None for i in model.items], dtype=bool)
    return np.array([i.supplier == supplier for i in model.items], dtype=bool)


def _at_location(model: SiteModel, location: str) -> BoolArray:
    return np.array([i.location == location for i in model.items], dtype=bool)


def compile_shocks(model: SiteModel, shocks: list[Any], days: int) -> ShockPlan:
    n = model.n_items
    plan = ShockPlan(
        demand_factor=np.ones((days, n), dtype=np.float32),
        price_factor=np.ones((days, n), dtype=np.float32),
        lead_factor=np.ones((days, n), dtype=np.float32),
        supplier_stopped_until=np.zeros((days, n), dtype=np.int32),
        closed=np.zeros((days, n), dtype=bool),
    )
    for shock in shocks:
        if isinstance(shock, ColdRoomFailure):
            if shock.day < days:
                plan.spoil.append((shock.day, _selected(model, shock) & _at_location(model, shock.location)))
            continue
        window = slice(shock.start, min(shock.end, days))
        if isinstance(shock, DemandShock):
            plan.demand_factor[window, _selected(model, shock)] *= shock.factor
        elif isinstance(shock, PriceShock):
            hit = _selected(model, shock) & _of_supplier(model, shock.supplier)
            plan.price_factor[window, hit] *= shock.factor
            if shock.prebuy is not None:
                day = max(0, shock.start - shock.prebuy.days_before)
                plan.prebuy.append((day, hit, shock.prebuy.cover_days))
        elif isinstance(shock, LeadTimeShock):
            plan.lead_factor[window, _of_supplier(model, shock.supplier)] *= shock.factor
        elif isinstance(shock, SupplierStop):
            hit = _of_supplier(model, shock.supplier)
            until = plan.supplier_stopped_until[window]
            plan.supplier_stopped_until[window] = np.where(hit, np.maximum(until, shock.end), until)
        elif isinstance(shock, RouteClosed):
            plan.closed[window, _at_location(model, shock.location)] = True
    return plan
