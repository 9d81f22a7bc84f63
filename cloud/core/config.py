"""Helpers around :class:`shelfsense.config.Settings` for the cloud service.

The cloud reads only the ``cloud`` and ``zones`` sections. Zone limits are looked up by
``(site_id, zone_id)`` because the same zone name may exist on two sites.
"""

from __future__ import annotations

from collections.abc import Mapping

from shelfsense.config import CloudSettings, Settings, ZoneLimits

ZoneKey = tuple[str, str]


def cloud_settings(settings: Settings) -> CloudSettings:
    return settings.cloud


def zone_limits(settings: Settings) -> Mapping[ZoneKey, ZoneLimits]:
    """Zone limits keyed by ``(site_id, zone_id)``."""
    return {(zone.site_id, zone.id): zone for zone in settings.zones}


__all__ = ["ZoneKey", "cloud_settings", "zone_limits"]
