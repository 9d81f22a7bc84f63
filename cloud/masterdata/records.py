"""Master data records: the validated models of each import kind (products, locations, lots,
items) and reading them from CSV or JSON, every problem reported with its row and column.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Table

from cloud.coldchain.mkt import MAX_ACTIVATION_ENERGY_KJ, MIN_ACTIVATION_ENERGY_KJ
from cloud.core import csvsafe
from cloud.core.errors import CloudError
from cloud.epcis.uris import gln_valid
from cloud.masterdata import tables as masterdata_db
from shelfsense.contract import EPC_PATTERN, Ident

MAX_REPORTED_PROBLEMS = 50


Kind = Literal["products", "locations", "lots", "items"]


KINDS: tuple[Kind, ...] = ("products", "locations", "lots", "items")


# Replenishment data (cloud.replenish.masterdata) imported from files through import_file too.
REPLENISH_KINDS = ("suppliers", "product_suppliers", "params", "purchase_orders", "demand")


@dataclass(frozen=True, slots=True)
class Problem:
    row: int | None  # 1-based data row; None for file-level problems
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"row {self.row}" if self.row is not None else "file"]
        if self.column:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}"


class MasterDataError(CloudError):
    """A master-data file or record was refused; nothing was written. Answered 422 with each
    problem's row and column (at most :data:`MAX_REPORTED_PROBLEMS`)."""

    status_code = 422
    code = "invalid_master_data"

    def __init__(self, kind: str, problems: Sequence[Problem]) -> None:
        self.kind = kind
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:MAX_REPORTED_PROBLEMS])
        more = len(self.problems) - MAX_REPORTED_PROBLEMS
        super().__init__(f"{kind}: {shown}" + (f" (and {more} more)" if more > 0 else ""))

    def body(self) -> dict[str, Any]:
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        errors = [{"row": p.row, "column": p.column, "msg": p.message} for p in shown]
        return {**super().body(), "errors": errors}


def gtin_check_digit_ok(gtin: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-8/12/13/14."""
    digits = [int(c) for c in gtin]
    body, check = digits[:-1], digits[-1]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ProductRecord(_Record):
    sku: Ident
    gtin: str | None = Field(default=None, description="GTIN-8/12/13/14, stored as 14 digits")
    name: Annotated[str, Field(max_length=200)] = ""
    shelf_life_days: Annotated[int | None, Field(ge=0, le=36500)] = None
    storage_temp_min_c: float | None = Field(default=None, ge=-273.15, le=1000)
    storage_temp_max_c: float | None = Field(default=None, ge=-273.15, le=1000)
    # Shelf-life model (cloud.lots.history): how fast the product ages with temperature. Empty =
    # Arrhenius at 83.144 kJ/mol, shelf_life_days holding at the middle of the storage range.
    shelf_life_model: Literal["arrhenius", "q10"] | None = None
    activation_energy_kj: float | None = Field(
        default=None, ge=MIN_ACTIVATION_ENERGY_KJ, le=MAX_ACTIVATION_ENERGY_KJ
    )
    q10: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)
    reference_temp_c: float | None = Field(default=None, gt=-273.15, le=1000)

    @field_validator("gtin")
    @classmethod
    def _gtin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.isdigit() or len(value) not in (8, 12, 13, 14):
            raise ValueError("a GTIN has 8, 12, 13 or 14 digits")
        if not gtin_check_digit_ok(value):
            raise ValueError("GTIN check digit is wrong")
        return value.zfill(14)

    @model_validator(mode="after")
    def _range(self) -> ProductRecord:
        low, high = self.storage_temp_min_c, self.storage_temp_max_c
        if low is not None and high is not None and low >= high:
            raise ValueError("storage_temp_min_c must be below storage_temp_max_c")
        return self


class LocationRecord(_Record):
    site_id: Ident
    location_id: Ident
    kind: Literal["site_area", "zone", "shelf", "cold_room", "dock"]
    parent_id: Ident | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    rfid_coverage: bool = False
    # GS1 GLN of the place (EPCIS exports it as an SGLN URI and resolves captured events by it):
    # 13 digits, how many of them are the company prefix, and the SGLN extension ("0" = none).
    gln: str | None = Field(default=None, description="GLN-13 with check digit")
    gcp_length: Annotated[int | None, Field(ge=6, le=12, description="digits of the company prefix")] = None
    gln_extension: Annotated[str | None, Field(pattern=r"^[0-9A-Za-z]{1,20}$")] = None

    @field_validator("gln")
    @classmethod
    def _gln(cls, value: str | None) -> str | None:
        if value is not None and not gln_valid(value):
            raise ValueError("a GLN has 13 digits with a valid GS1 check digit")
        return value

    @model_validator(mode="after")
    def _gln_complete(self) -> LocationRecord:
        if (self.gln is None) != (self.gcp_length is None):
            raise ValueError("gln and gcp_length go together (the SGLN URI needs the company prefix)")
        if self.gln is None and self.gln_extension is not None:
            raise ValueError("gln_extension needs a gln")
        if self.gln is not None and self.gln_extension is None:
            return self.model_copy(update={"gln_extension": "0"})
        return self


class LotRecord(_Record):
    sku: Ident
    lot_code: Ident
    expiry: date | None = None


class ItemRecord(_Record):
    epc: Annotated[str, Field(pattern=EPC_PATTERN)]
    sku: Ident
    lot_code: Ident | None = None

    @field_validator("epc", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


Record = ProductRecord | LocationRecord | LotRecord | ItemRecord


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: Kind
    table: Table
    model: type[_Record]
    key: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return list(self.model.model_fields)


SPECS: Mapping[str, KindSpec] = {
    "products": KindSpec("products", masterdata_db.products, ProductRecord, ("sku",)),
    "locations": KindSpec("locations", masterdata_db.locations, LocationRecord, ("site_id", "location_id")),
    "lots": KindSpec("lots", masterdata_db.lots, LotRecord, ("sku", "lot_code")),
    "items": KindSpec("items", masterdata_db.items, ItemRecord, ("epc",)),
}


def spec(kind: str) -> KindSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise MasterDataError(
            kind, [Problem(None, None, f"unknown kind; use one of {', '.join(KINDS)}")]
        ) from None


def parse_rows(kind: str, raw_rows: Sequence[Mapping[str, Any]]) -> list[Record]:
    """Validate raw rows into records, collecting every problem (row and column named)."""
    model = spec(kind).model
    problems: list[Problem] = []
    numbered: list[tuple[int, Record]] = []
    for number, raw in enumerate(raw_rows, start=1):
        if not isinstance(raw, Mapping):
            problems.append(Problem(number, None, "a row must be an object"))
            continue
        try:
            numbered.append((number, model.model_validate(raw)))  # type: ignore[arg-type]
        except ValidationError as exc:
            for error in exc.errors():
                column = ".".join(str(p) for p in error["loc"]) or None
                message = "unknown column" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append(Problem(number, column, message))
    _check_duplicate_keys(kind, numbered, problems)
    if problems:
        raise MasterDataError(kind, sorted(problems, key=lambda p: p.row or 0))
    return [record for _, record in numbered]


def _check_duplicate_keys(kind: str, numbered: Sequence[tuple[int, Record]], problems: list[Problem]) -> None:
    key = spec(kind).key
    first_row: dict[tuple[Any, ...], int] = {}
    for number, record in numbered:
        value = tuple(getattr(record, k) for k in key)
        if value in first_row:
            problems.append(
                Problem(number, key[-1], f"duplicate key {value}, first on row {first_row[value]}")
            )
        else:
            first_row[value] = number


def read_csv(text: str) -> list[dict[str, Any]]:
    """CSV with a header row; empty cells mean "not given" (the field's default / NULL)."""
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            if None in row:  # more cells than header columns
                row = {k: v for k, v in row.items() if k is not None}
                row["(extra cells)"] = "?"
            rows.append({k: csvsafe.restore_cell(v) for k, v in row.items() if v not in ("", None)})
    except csv.Error as exc:  # a cell past the field size limit, a NUL byte
        raise MasterDataError("file", [Problem(reader.line_num, None, f"not valid CSV: {exc}")]) from exc
    return rows


def read_json(text: str) -> list[dict[str, Any]]:
    """A JSON list of objects, or an object with an ``items`` list (our export format)."""
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
        raise MasterDataError("file", [Problem(None, None, f"not valid JSON: {exc}")]) from exc
    except RecursionError as exc:
        raise MasterDataError("file", [Problem(None, None, "JSON is nested too deeply")]) from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise MasterDataError("file", [Problem(None, None, "JSON must be a list of objects")])
    return data


def parse_text(kind: str, text: str, fmt: Literal["csv", "json"]) -> list[Record]:
    return parse_rows(kind, read_csv(text) if fmt == "csv" else read_json(text))


def format_of(path: Path) -> Literal["csv", "json"]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    raise MasterDataError("file", [Problem(None, None, f"{path.name}: use a .csv or .json file")])


__all__ = [
    "KINDS",
    "SPECS",
    "ItemRecord",
    "LocationRecord",
    "LotRecord",
    "MasterDataError",
    "Problem",
    "ProductRecord",
    "gtin_check_digit_ok",
    "parse_rows",
    "parse_text",
]
