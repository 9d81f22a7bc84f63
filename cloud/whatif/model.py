"""The site as the simulator sees it: a full grid of (sku, location) items with their state as arrays.

Item ``i`` is product ``i // S`` at location ``i % S`` (``S`` locations). Each item keeps the cloud's
own :class:`~cloud.replenish.proposals.ItemState` (so the policy levels come from the same code the
restocking run uses) plus what the simulation adds: a daily expected-demand path, the demand
distribution, the shelf life, lots with their expiry and the open receipts.

:func:`from_synthetic` builds a model from a scenario's ``[site]``; :mod:`cloud.whatif.state` builds one
from the cloud database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from cloud.replenish.forecast import forecast
from cloud.replenish.proposals import ItemState
from cloud.whatif.scenario import Product, Site

FloatArray = NDArray[np.float64]
NO_EXPIRY = math.inf
SIGMA_PER_MAE = 1.25  # the cloud's forecast error sigma (cloud.replenish.demand.forecast_all)


@dataclass(frozen=True, slots=True)
class Receipt:
    item: int
    day: int  # day of arrival (0 = today)
    quantity: float
    expires_in_days: float = NO_EXPIRY  # transfers carry their lots' expiry; purchases are fresh
    transfer: bool = False  # a transfer in transit (else an open purchase order line)


@dataclass(slots=True)
class SiteModel:
    site_id: str
    skus: list[str]
    locations: list[str]
    categories: list[str]  # per sku ("" when unknown)
    items: list[ItemState]  # len N * S, item i = sku i // S at location i % S
    mean_path: FloatArray  # (I, days): expected demand per day
    poisson: NDArray[np.bool_]  # (I,): Poisson demand (else normal with ItemState.demand_std)
    shelf_life: FloatArray  # (I,): days a fresh receipt keeps, inf = does not expire
    lots: list[list[tuple[float, float]]]  # per item: (quantity, expires in days)
    receipts: list[Receipt] = field(default_factory=list)  # open purchase orders and transfers
    transfer_lead_time_days: int = 1

    @property
    def n_items(self) -> int:
        return len(self.items)

    def sku_of(self, item: int) -> str:
        return self.skus[item // len(self.locations)]

    def location_of(self, item: int) -> str:
        return self.locations[item % len(self.locations)]

    def perishable_skus(self) -> NDArray[np.bool_]:
        n_loc = len(self.locations)
        lots = np.array([any(math.isfinite(e) for _, e in lots) for lots in self.lots], dtype=bool)
        return (np.isfinite(self.shelf_life) | lots).reshape(-1, n_loc).any(axis=1)

    def perishable_first(self) -> SiteModel:
        """The same site with perishable SKUs first (the engine keeps lot buckets for those only)."""
        order = np.argsort(~self.perishable_skus(), kind="stable")
        n_loc = len(self.locations)
        items = (order[:, None] * n_loc + np.arange(n_loc)).reshape(-1)
        new_index = np.empty_like(items)
        new_index[items] = np.arange(items.size)
        return SiteModel(
            site_id=self.site_id,
            skus=[self.skus[i] for i in order],
            locations=self.locations,
            categories=[self.categories[i] for i in order],
            items=[self.items[i] for i in items],
            mean_path=self.mean_path[items],
            poisson=self.poisson[items],
            shelf_life=self.shelf_life[items],
            lots=[self.lots[i] for i in items],
            receipts=[replace(r, item=int(new_index[r.item])) for r in self.receipts],
            transfer_lead_time_days=self.transfer_lead_time_days,
        )

    def suppliers(self) -> list[str]:
        return sorted({i.supplier for i in self.items if i.supplier is not None})


def fitted_demand(history: FloatArray, days: int) -> tuple[FloatArray, FloatArray, list[str]]:
    """The cloud's forecast fitted to each history row: daily mean path, error sigma, method."""
    result = forecast(history, "auto", horizon=days)
    path = np.maximum(result.forecast, 0.0)
    sigma = np.where(np.isfinite(result.mae), SIGMA_PER_MAE * np.nan_to_num(result.mae), history.std(axis=1))
    return path, sigma, [str(m) for m in result.method]


def _per_location(value: float | list[float] | None, n: int, default: float = 0.0) -> list[float]:
    if value is None:
        return [default] * n
    if isinstance(value, list):
        return [float(v) for v in value]
    return [float(value)] * n


def _demand(product: Product, n_loc: int, days: int) -> tuple[FloatArray, list[float], str]:
    if product.history is not None:
        path, sigma, methods = fitted_demand(np.asarray(product.history, dtype=np.float64), days)
        return path, [float(s) for s in sigma], ",".join(methods)
    means = _per_location(product.demand_mean, n_loc)
    default_std = [math.sqrt(m) for m in means] if product.distribution == "poisson" else [0.0] * n_loc
    stds = _per_location(product.demand_std, n_loc) if product.demand_std is not None else default_std
    return np.repeat(np.asarray(means)[:, None], days, axis=1), stds, "given"


def from_synthetic(site: Site, days: int) -> SiteModel:
    """The model of a scenario's own small site (no database)."""
    suppliers = {s.id: s for s in site.suppliers}
    n_loc = len(site.locations)
    items: list[ItemState] = []
    paths: list[FloatArray] = []
    lots: list[list[tuple[float, float]]] = []
    receipts: list[Receipt] = []
    for product in site.products:
        path, stds, method = _demand(product, n_loc, days)
        supplier = suppliers.get(product.supplier) if product.supplier else None
        lead = math.ceil(supplier.lead_time_days - 1e-9) if supplier else 0
        on_hand = _per_location(product.on_hand, n_loc)
        shelf = product.shelf_life_days or NO_EXPIRY
        for s, location in enumerate(site.locations):
            index = len(items)
            if product.lots is not None:
                stock = [(lot.quantity, lot.expires_in_days or shelf) for lot in product.lots[s]]
            else:
                stock = [(on_hand[s], shelf)] if on_hand[s] > 0 else []
            lots.append(stock)
            on_order = product.on_order[s] if product.on_order else 0.0
            if on_order > 0:
                receipts.append(Receipt(index, max(lead, 1), on_order))
            paths.append(path[s])
            items.append(
                ItemState(
                    product=product.sku,
                    location=location,
                    on_hand=sum(q for q, _ in stock),
                    demand_mean=float(path[s][0]),
                    demand_std=stds[s],
                    on_order=on_order,
                    supplier=supplier.id if supplier else None,
                    lead_time_days=lead,
                    lead_time_std_days=supplier.lead_time_std_days if supplier else 0.0,
                    transfer_lead_time_days=site.transfer_lead_time_days,
                    unit_cost=product.unit_cost,
                    pack_size=product.pack_size,
                    moq=product.moq if product.moq is not None else (supplier.moq if supplier else 0.0),
                    service_level=product.service_level,
                    review_period_days=float(product.review_period_days),
                    forecast_method=method,
                    min_qty=product.min_qty,
                    max_qty=product.max_qty,
                )
            )
    n = len(items)
    return SiteModel(
        site_id=site.id,
        skus=[p.sku for p in site.products],
        locations=list(site.locations),
        categories=[p.category for p in site.products],
        items=items,
        mean_path=np.asarray(paths, dtype=np.float64).reshape(n, days),
        poisson=np.repeat([p.distribution == "poisson" for p in site.products], n_loc),
        shelf_life=np.repeat([p.shelf_life_days or NO_EXPIRY for p in site.products], n_loc).astype(
            np.float64
        ),
        lots=lots,
        receipts=receipts,
        transfer_lead_time_days=site.transfer_lead_time_days,
    )
