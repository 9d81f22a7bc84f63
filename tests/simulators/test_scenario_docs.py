"""docs/scenarios.md is generated from the scenario models, current, and covers every key the
shipped scenario files use."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from simulators.scenario_docs import render_markdown

ROOT = Path(__file__).resolve().parents[2]


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_scenario_reference_is_current_and_complete() -> None:
    text = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert text == render_markdown(), "run: python -m simulators.scenario_docs > docs/scenarios.md"
    documented = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    files = sorted((ROOT / "simulators" / "scenarios").glob("*.toml"))
    assert files
    for path in files:
        used = _keys(tomllib.loads(path.read_text(encoding="utf-8")))
        assert used <= documented, (path.name, used - documented)
