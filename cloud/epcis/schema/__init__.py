"""Validation against the official EPCIS 2.0 JSON Schema shipped next to this module (see README.md
for its source and pinned commit)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator

MAX_REPORTED = 20


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("epcis-json-schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@lru_cache(maxsize=1)
def _validator() -> Draft7Validator:
    return Draft7Validator(schema())


def schema_errors(document: Any) -> list[str]:
    """What is wrong with ``document`` per the schema (at most ``MAX_REPORTED``; empty = valid),
    each prefixed with the JSON path of the offending value."""
    errors = []
    try:
        for error in _validator().iter_errors(document):
            errors.append(f"{error.json_path}: {error.message[:300]}")
            if len(errors) >= MAX_REPORTED:
                break
    except RecursionError:  # a hostile, absurdly nested extension field
        return ["$: nested too deeply"]
    return errors


__all__ = ["MAX_REPORTED", "schema", "schema_errors"]
