"""The alert channel types, registered in one place: type name, settings model and factory.

Everything that names a channel type reads it from here: ``[[cloud.coldchain.channels]]`` entries
are validated by :func:`parse_channel` (the settings model of their ``type``; an unknown type is
refused, never guessed) and built by :func:`build_channel`. A new channel type is one module in
``cloud/notify/`` with its settings model, its channel class and one :func:`register_channel` line,
imported by ``cloud/notify/__init__.py`` (or, for a plug-in, by whatever imports it before the
settings are read): no other file needs an edit (docs/alerts.md, "How to add an alert channel").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from cloud.notify.base import Channel, ChannelConfigError
from cloud.notify.destinations import ANY_PUBLIC, Destinations
from shelfsense.config import ChannelSettingsBase

S = TypeVar("S", bound=ChannelSettingsBase)
# (its settings entry, the allowed destinations) -> the channel; secrets are unwrapped here and
# hosts checked (DestinationRefused) before anything connects.
Factory = Callable[[S, Destinations], Channel]


@dataclass(frozen=True, slots=True)
class ChannelKind(Generic[S]):
    name: str  # the ``type`` of its settings entries
    settings: type[S]
    build: Factory[S]


_KINDS: dict[str, ChannelKind[Any]] = {}


def register_channel(type_: str, settings: type[S], build: Factory[S]) -> None:
    """Make ``type = "<type_>"`` configurable (validated by ``settings``) and buildable (``build``)."""
    if type_ in _KINDS:
        raise ValueError(f"alert channel type {type_!r} is already registered")
    declared = settings.model_fields["type"].default
    if declared != type_:
        raise ValueError(f"{settings.__name__}.type defaults to {declared!r}, not {type_!r}")
    _KINDS[type_] = ChannelKind(type_, settings, build)


def unregister_channel(type_: str) -> None:
    """Forget a channel type (tests registering their own)."""
    _KINDS.pop(type_, None)


def channel_types() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def _kind(type_: object) -> ChannelKind[Any]:
    found = _KINDS.get(type_) if isinstance(type_, str) else None
    if found is None:
        known = ", ".join(map(repr, channel_types()))
        raise ChannelConfigError(f"unknown channel type {type_!r} (known: {known})")
    return found


def parse_channel(value: object) -> ChannelSettingsBase:
    """One ``[[cloud.coldchain.channels]]`` entry, validated by the settings model of its ``type``.

    Raises pydantic errors (this runs inside the settings' validation), one line naming every
    wrong key, so the message says ``cloud.coldchain.channels.0: url: Field required``."""
    if isinstance(value, ChannelSettingsBase):
        type_ = value.type
        if isinstance(value, _kind_or_error(type_).settings):
            return value
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise PydanticCustomError("channel_type", "a channel is a table with a type")
    kind = _kind_or_error(value.get("type"))
    try:
        return kind.settings.model_validate(dict(value))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or kind.name}: {error['msg']}" for error in exc.errors()
        )
        raise PydanticCustomError("channel_settings", "{problems}", {"problems": problems}) from None


def _kind_or_error(type_: object) -> ChannelKind[Any]:
    try:
        return _kind(type_)
    except ChannelConfigError as exc:
        raise PydanticCustomError("channel_type", "{message}", {"message": str(exc)}) from None


def build_channel(config: ChannelSettingsBase, destinations: Destinations = ANY_PUBLIC) -> Channel:
    """A delivery channel from its validated settings entry; :class:`ChannelConfigError` for a
    type nobody registered (never a fallback), :class:`DestinationRefused` for a refused host."""
    kind = _kind(config.type)
    if not isinstance(config, kind.settings):
        raise ChannelConfigError(f"channel {config.name!r}: settings are not {kind.settings.__name__}")
    return kind.build(config, destinations)


__all__ = [
    "ChannelKind",
    "Factory",
    "build_channel",
    "channel_types",
    "parse_channel",
    "register_channel",
    "unregister_channel",
]
