"""The scenario file reference, written from the models that validate scenario files:
``python -m simulators.scenario_docs > docs/scenarios.md``."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from shelfsense.model_docs import field_table
from simulators.scenario import (
    ColdRoomSpec,
    CompressorFailure,
    DoorOpening,
    ExitSpec,
    FaultEvent,
    PortalSpec,
    ScenarioSpec,
)

_HEADER = """\
# Simulator scenario files

Generated from the validating models by `python -m simulators.scenario_docs`; do not edit.

A scenario is a TOML file (`shelfsense sim scenario FILE` runs one; examples in
`simulators/scenarios/`) describing one cycle of dock-door passages, a cold room's temperature and
timed device faults. The cycle repeats every `cycle_s` seconds with fresh SGTIN serials. Times are
fractions of the cycle (0..1) unless a key says seconds. Unknown keys are refused with a message
naming them.
"""

_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("top level", ScenarioSpec),
    ("`[[portals]]`", PortalSpec),
    ("`exits = [{ ... }]` of a portal", ExitSpec),
    ("`[cold_room]`", ColdRoomSpec),
    ('`[[cold_room.events]]` with `kind = "compressor_failure"`', CompressorFailure),
    ('`[[cold_room.events]]` with `kind = "door_open"`', DoorOpening),
    ("`[[events]]` (device faults)", FaultEvent),
)


def render_markdown() -> str:
    lines = [_HEADER]
    for title, model in _SECTIONS:
        about = inspect.cleandoc(model.__doc__ or "")
        lines += [f"## {title}", "", about, "", *field_table(model, "key"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
