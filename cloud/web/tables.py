"""Tables of this feature, on the shared metadata (imported at the bottom of cloud.core.db)."""

from __future__ import annotations

from cloud.core.db import metadata

__all__ = ["metadata"]
