"""The what-if scenario file: simulation settings, shocks, policies and an optional synthetic site.

A scenario is TOML (or the same structure as JSON, for the API). Days are counted from the start of
the simulation (day 0 = today). Every model forbids unknown keys, so a typo is an error, not a
silently ignored shock. See docs/whatif.md for the format with examples.
"""

from __future__ import annotations

import tomllib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloud.whatif.errors import ScenarioError

MAX_DAYS = 730
MAX_RUNS = 2000
MAX_LEAD_TIME_DAYS = 365.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Simulation(_Strict):
    days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 90
    runs: Annotated[int, Field(ge=1, le=MAX_RUNS)] = 200
    seed: int = 1
    unmet: Literal["lost", "backorder"] = "lost"
    approval_delay_days: Annotated[int, Field(ge=0, le=60)] = 0  # 0: proposals treated as approved at once
    lot_buckets: Annotated[int, Field(ge=1, le=16)] = 4  # FEFO age buckets per (sku, location, run)
    randomness: bool = True  # false: demand = its mean, lead time = its mean (a deterministic ledger)


# --- shocks --------------------------------------------------------------------------------------


class _Window(_Strict):
    name: str = "shock"  # shocks with the same name form one scenario row
    start: Annotated[int, Field(ge=0, le=MAX_DAYS)] = 0
    days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 1

    @property
    def end(self) -> int:
        return self.start + self.days


class _Selection(_Strict):
    """Which (sku, location) items a shock hits; empty lists mean all."""

    skus: list[str] = []  # fnmatch patterns
    categories: list[str] = []
    locations: list[str] = []


class SupplierStop(_Window):
    kind: Literal["supplier_stop"]
    supplier: str


class LeadTimeShock(_Window):
    kind: Literal["lead_time"]
    supplier: str | None = None  # None: every supplier
    factor: Annotated[float, Field(gt=0, le=50)]


class RouteClosed(_Window):
    """No receipts and no transfers in or out at ``location`` (a closed site, port or road)."""

    kind: Literal["route_closed"]
    location: str


class DemandShock(_Window, _Selection):
    kind: Literal["demand"]
    factor: Annotated[float, Field(ge=0, le=100)]


class PreBuy(_Strict):
    """Order ``cover_days`` of extra demand ``days_before`` the price change, at the old price."""

    days_before: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 7
    cover_days: Annotated[float, Field(gt=0, le=365)] = 30.0


class PriceShock(_Window, _Selection):
    """Unit cost times ``factor`` from ``start`` for ``days`` (default: to the end of the horizon)."""

    kind: Literal["price"]
    factor: Annotated[float, Field(gt=0, le=100)]
    days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = MAX_DAYS
    supplier: str | None = None
    prebuy: PreBuy | None = None


class ColdRoomFailure(_Selection):
    """On ``day`` every lot at ``location`` (of the selected SKUs) spoils."""

    kind: Literal["cold_room_failure"]
    name: str = "shock"
    location: str
    day: Annotated[int, Field(ge=0, le=MAX_DAYS)] = 0


Shock = Annotated[
    SupplierStop | LeadTimeShock | RouteClosed | DemandShock | PriceShock | ColdRoomFailure,
    Field(discriminator="kind"),
]


# --- policies ------------------------------------------------------------------------------------


class Policy(_Strict):
    """A restocking policy to compare; unset fields keep the site's current parameters."""

    name: str = "current"
    service_level: Annotated[float, Field(gt=0, lt=1)] | None = None
    safety_stock_method: Literal["service_level", "days_of_cover"] = "service_level"
    cover_days: Annotated[float, Field(ge=0, le=365)] = 0.0  # for days_of_cover
    review_period_days: Annotated[int, Field(ge=1, le=90)] | None = None
    transfer_first: bool = True
    order_rule: Literal["min_max", "fixed_quantity"] = "min_max"
    order_quantity: Annotated[float, Field(gt=0)] | None = None  # fixed_quantity: Q (default: EOQ or max-min)
    min_qty: Annotated[float, Field(ge=0)] | None = None  # override the reorder point of every item
    max_qty: Annotated[float, Field(ge=0)] | None = None  # override the order-up-to level of every item


# --- synthetic site ------------------------------------------------------------------------------


class Supplier(_Strict):
    id: str
    lead_time_days: Annotated[float, Field(ge=0, le=MAX_LEAD_TIME_DAYS)]
    lead_time_std_days: Annotated[float, Field(ge=0, le=MAX_LEAD_TIME_DAYS)] = 0.0
    moq: Annotated[float, Field(ge=0)] = 0.0


class Lot(_Strict):
    quantity: Annotated[float, Field(ge=0)]
    expires_in_days: Annotated[float, Field(ge=0)] | None = None  # None: the product's shelf life


class Product(_Strict):
    sku: str
    category: str = ""
    supplier: str | None = None  # None: replenished by transfers only
    unit_cost: Annotated[float, Field(ge=0)] = 1.0
    pack_size: Annotated[float, Field(gt=0)] = 1.0
    moq: Annotated[float, Field(ge=0)] | None = None  # None: the supplier's
    shelf_life_days: Annotated[float, Field(gt=0)] | None = None  # None: does not expire
    distribution: Literal["normal", "poisson"] = "normal"
    # Demand per location per day: either mean/std, or a history the cloud's forecast is fitted to.
    demand_mean: Annotated[float, Field(ge=0)] | list[Annotated[float, Field(ge=0)]] = 0.0
    demand_std: Annotated[float, Field(ge=0)] | list[Annotated[float, Field(ge=0)]] | None = None
    history: list[list[Annotated[float, Field(ge=0)]]] | None = None  # one daily series per location
    on_hand: Annotated[float, Field(ge=0)] | list[Annotated[float, Field(ge=0)]] = 0.0
    lots: list[list[Lot]] | None = None  # per location, instead of on_hand
    on_order: list[Annotated[float, Field(ge=0)]] = []  # per location, arriving after the lead time
    service_level: Annotated[float, Field(gt=0, lt=1)] = 0.95
    review_period_days: Annotated[int, Field(ge=1, le=90)] = 1
    min_qty: Annotated[float, Field(ge=0)] | None = None
    max_qty: Annotated[float, Field(ge=0)] | None = None


class Site(_Strict):
    id: str = "synthetic"
    locations: Annotated[list[str], Field(min_length=1, max_length=50)]
    transfer_lead_time_days: Annotated[int, Field(ge=1, le=60)] = 1
    suppliers: list[Supplier] = []
    products: Annotated[list[Product], Field(min_length=1, max_length=20000)]

    @model_validator(mode="after")
    def _consistent(self) -> Site:
        suppliers = {s.id for s in self.suppliers}
        if len(set(self.locations)) != len(self.locations):
            raise ValueError("locations must be unique")
        if len({p.sku for p in self.products}) != len(self.products):
            raise ValueError("product skus must be unique")
        n = len(self.locations)
        for p in self.products:
            if p.supplier is not None and p.supplier not in suppliers:
                raise ValueError(f"product {p.sku}: unknown supplier {p.supplier!r}")
            for field in ("demand_mean", "demand_std", "on_hand"):
                value = getattr(p, field)
                if isinstance(value, list) and len(value) != n:
                    raise ValueError(f"product {p.sku}: {field} needs one value per location ({n})")
            for field in ("history", "lots"):
                value = getattr(p, field)
                if value is not None and len(value) != n:
                    raise ValueError(f"product {p.sku}: {field} needs one entry per location ({n})")
            if p.on_order and len(p.on_order) != n:
                raise ValueError(f"product {p.sku}: on_order needs one value per location ({n})")
        return self


class Scenario(_Strict):
    name: str = "scenario"
    site_id: str | None = None  # the cloud site to load (ignored with a synthetic [site])
    locations: list[str] = []  # restrict a loaded site to these locations (empty: all)
    simulation: Simulation = Simulation()
    shocks: Annotated[list[Shock], Field(max_length=100)] = []
    policies: Annotated[list[Policy], Field(max_length=20)] = [Policy()]
    site: Site | None = None

    @model_validator(mode="after")
    def _named(self) -> Scenario:
        names = [p.name for p in self.policies]
        if not names:
            raise ValueError("at least one policy")
        if len(set(names)) != len(names):
            raise ValueError("policy names must be unique")
        if any(s.name == "baseline" for s in self.shocks):
            raise ValueError("'baseline' is the row without shocks; name the shock otherwise")
        if self.site is None and self.site_id is None:
            raise ValueError("give site_id (a cloud site) or a synthetic [site]")
        return self

    def shock_groups(self) -> dict[str, list[Any]]:
        """Scenario rows: ``baseline`` (no shock) then one per shock name, in file order."""
        groups: dict[str, list[Any]] = {"baseline": []}
        for shock in self.shocks:
            groups.setdefault(shock.name, []).append(shock)
        return groups


def parse_scenario(data: dict[str, Any]) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'scenario'}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise ScenarioError(f"invalid scenario: {problems}") from exc


def load_scenario_text(text: str) -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario is not valid TOML: {exc}") from exc
    return parse_scenario(data)
