"""The import file formats, written from the models that validate them (so the reference cannot
drift from the code): ``python -m cloud.masterdata.import_formats > docs/import-formats.md``."""

from __future__ import annotations

from pydantic import BaseModel

from cloud.masterdata import records as masterdata_records
from cloud.replenish import masterdata as rmd
from shelfsense.model_docs import field_table

_HEADER = """\
# Import file formats

Generated from the validating models by `python -m cloud.masterdata.import_formats`; do not edit.

`shelfsense cloud import FILE --kind KIND` (or `POST /api/v1/master/{kind}/import`,
`POST /api/v1/replenish/{kind}/import` with `Content-Type: text/csv` or JSON) imports a whole
file: every row is checked first (all problems reported as row, column and message) and then all
rows are upserted by their key in one transaction, or none. CSV: UTF-8 (a BOM is accepted), a
header row with the column names below in any order; an empty cell is an absent value. JSON: an
array of objects with the same names. Unknown columns are refused. Import products before lots and
items, suppliers before product_suppliers, locations before params.
"""


def _table(kind: str, model: type[BaseModel], key: tuple[str, ...]) -> list[str]:
    return [
        f"## `{kind}`",
        "",
        f"Key (upsert): {', '.join(f'`{k}`' for k in key)}.",
        "",
        *field_table(model),
        "",
    ]


def render_markdown() -> str:
    lines = [_HEADER]
    for kind, spec in masterdata_records.SPECS.items():
        lines += _table(kind, spec.model, spec.key)
    for kind, model in rmd.MODELS.items():
        lines += _table(kind, model, rmd.KEYS[kind])
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
