"""Markdown tables of pydantic models' fields (column, required, type, unit, default, rules), for
reference docs generated from the models that validate the input (import formats, scenarios)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

# Units follow from our column naming convention.
_UNITS = (("_c", "°C"), ("_days", "days"), ("_kj", "kJ/mol"), ("_s", "seconds"), ("_qty", "units"))

_TYPE_NAMES = {"string": "text", "boolean": "true/false"}
_BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))


def _type(prop: Mapping[str, Any]) -> str:
    if "$ref" in prop:
        return "table (below)"
    if prop.get("type") == "array":
        items = prop.get("items")
        if isinstance(items, Mapping) and items:
            return "list of " + _type(items)
        return "list"
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
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
        return "see below"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _unit(name: str) -> str:
    return next((unit for suffix, unit in _UNITS if name.endswith(suffix)), "")


def field_table(model: type[BaseModel], first_column: str = "column") -> list[str]:
    """One Markdown table row per field of ``model``, in declaration order."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    lines = [
        f"| {first_column} | required | type | unit | default | rules |",
        "|---|---|---|---|---|---|",
    ]
    for name, prop in schema["properties"].items():
        default = "" if name in required else _default(prop.get("default"))
        lines.append(
            f"| `{name}` | {'yes' if name in required else 'no'} | {_type(prop)} | {_unit(name)} | {default} "
            f"| {_rules(prop)} |"
        )
    return lines


__all__ = ["field_table"]
