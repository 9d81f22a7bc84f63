"""Edge transports, registered by the modules that implement them.

Each transport module ends with one :func:`register_transport` call: which ``[edge]`` settings
list holds its configs (``uhf_readers``, ``modbus_probes``, ...), which of those configs are its
(``accepts``), and a factory building it from the config and the agent's :class:`DeviceWiring`.
The agent builds its device list from here (:func:`build_devices`), so a new reader type is its
module plus its config model; ``edge/agent.py`` needs no edit. What a transport is and how it
delivers (one ``emit``) is :mod:`edge.transports.protocol`.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from edge.clock import Clock
from edge.supervisor import DeviceHealthState
from edge.transports.protocol import Emit, Transport

if TYPE_CHECKING:
    from edge.outbox import Outbox
    from shelfsense.config import EdgeSettings

__all__ = [
    "BUILTIN_TRANSPORT_MODULES",
    "Device",
    "DeviceWiring",
    "Transport",
    "TransportKind",
    "build_devices",
    "register_transport",
    "transport_kinds",
]


class DeviceWiring(Protocol):
    """What the agent offers the transports it builds (edge.agent.EdgeAgent fits)."""

    edge: EdgeSettings
    cycle_s: float
    counters: Counter[str]
    outbox: Outbox
    smoothers: dict[str, Any]
    # Logical reader id -> (its device's health, its silence limit in s): the portals' liveness input.
    reader_liveness: dict[str, tuple[DeviceHealthState, float]]

    # The one clock of the agent (receive times, health) and its intake (edge.transports.protocol).
    @property
    def clock(self) -> Clock: ...

    @property
    def emit(self) -> Emit: ...


# (device id, its health, the transport built for it)
Device = tuple[str, DeviceHealthState, Transport]


@dataclass(frozen=True, slots=True)
class TransportKind:
    name: str
    settings_field: str  # the EdgeSettings attribute holding the configs (a list, or one or None)
    accepts: Callable[[Any], bool]
    build: Callable[[DeviceWiring, Any], Device]


_KINDS: dict[str, TransportKind] = {}
# The modules that register the built-in transports (imported on first use, not at import:
# each of them imports this module to register itself).
BUILTIN_TRANSPORT_MODULES = (
    "edge.transports.chafon",
    "edge.transports.serial_uhf",
    "edge.transports.modbus",
    "edge.transports.llrp",
    "edge.transports.pn532",
    "edge.transports.rdm6300",
    "edge.transports.mqtt",
)


def register_transport(
    name: str,
    settings_field: str,
    build: Callable[[DeviceWiring, Any], Device],
    accepts: Callable[[Any], bool] = lambda _config: True,
) -> None:
    """Register a transport kind. Kinds sharing a settings field must accept disjoint configs
    (e.g. Chafon and M100 readers in ``uhf_readers``, told apart by their config type)."""
    if name in _KINDS:
        raise ValueError(f"transport {name!r} is already registered")
    _KINDS[name] = TransportKind(name, settings_field, accepts, build)


def transport_kinds() -> tuple[TransportKind, ...]:
    for module in BUILTIN_TRANSPORT_MODULES:
        importlib.import_module(module)
    return tuple(_KINDS.values())


def _configs(edge: EdgeSettings, field: str) -> Iterator[Any]:
    value = getattr(edge, field)
    if value is None:
        return
    yield from value if isinstance(value, list) else [value]


def build_devices(wiring: DeviceWiring) -> list[Device]:
    """The devices the edge settings configure, each built by the first kind that accepts it
    (in the order of the settings' fields, so the device list does not depend on import order)."""
    kinds = transport_kinds()
    fields = {kind.settings_field for kind in kinds}
    devices = []
    for field in [f for f in type(wiring.edge).model_fields if f in fields]:
        for config in _configs(wiring.edge, field):
            kind = next((k for k in kinds if k.settings_field == field and k.accepts(config)), None)
            if kind is None:
                raise ValueError(f"no transport registered for {field} entry {config!r}")
            devices.append(kind.build(wiring, config))
    return devices
