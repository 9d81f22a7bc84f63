"""The import file formats, written from the models that validate them (so the reference cannot
drift from the code): ``python -m cloud.services.import_formats > docs/import-formats.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from cloud.replenish import masterdata as rmd
from cloud.services import masterdata as md

# Units follow from our column naming convention.
_UNITS = (("_c", "°C"), ("_days", "days"), ("_kj", "kJ/mol"), ("_s", "seconds"), ("_qty", "units"))

_TYPE_NAMES = {"string": "text", "boolean": "true/false"}
_BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))

_HEADER = """\
# Import file formats

Generated from the validating models by `python -m cloud.services.import_formats`; do not edit.

`shelfsense cloud import FILE --kind KIND` (or `POST /api/v1/master/{kind}/import`,
`POST /api/v1/replenish/{kind}/import` with `Content-Type: text/csv` or JSON) imports a whole
file: every row is checked first (all problems reported as row, column and message) and then all
rows are upserted by their key in one transaction, or none. CSV: UTF-8 (a BOM is accepted), a
header row with the column names below in any order; an empty cell is an absent value. JSON: an
array of objects with the same names. Unknown columns are refused. Import products before lots and
items, suppliers before product_suppliers, locations before params.
"""


def _type(prop: Mapping[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = str(prop.get("format") or prop.get("type", "text"))
    return {"string": "text", "number": "number", "integer": "integer", "boolean": "true/false"}.get(
        kind, kind
    )


def _rules(prop: Mapping[str, Any]) -> str:
    parts = [prop.get("description", "")]
    for p in [prop, *prop.get("anyOf", [])]:
        for key, text in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        ):
            if key in p:
                parts.append(f"{text} {p[key]}")
        if "pattern" in p:
            parts.append(f"pattern `{p['pattern']}`")
        if "maxLength" in p:
            parts.append(f"at most {p['maxLength']} characters")
    return "; ".join(x for x in parts if x)


def _default(value: Any) -> str:
    if value is None or value == "":
        return "empty"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _unit(name: str) -> str:
    return next((unit for suffix, unit in _UNITS if name.endswith(suffix)), "")


def _table(kind: str, model: type[BaseModel], key: tuple[str, ...]) -> list[str]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    lines = [
        f"## `{kind}`",
        "",
        f"Key (upsert): {', '.join(f'`{k}`' for k in key)}.",
        "",
        "| column | required | type | unit | default | rules |",
        "|---|---|---|---|---|---|",
    ]
    for name, prop in schema["properties"].items():
        default = "" if name in required else _default(prop.get("default"))
        lines.append(
            f"| `{name}` | {'yes' if name in required else 'no'} | {_type(prop)} | {_unit(name)} | {default} "
            f"| {_rules(prop)} |"
        )
    return [*lines, ""]


def render_markdown() -> str:
    lines = [_HEADER]
    for kind, spec in md.SPECS.items():
        lines += _table(kind, spec.model, spec.key)
    for kind, model in rmd.MODELS.items():
        lines += _table(kind, model, rmd.KEYS[kind])
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
