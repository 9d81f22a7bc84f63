"""The cloud's small error tree. Every error response body is ``{"detail": ..., "code": ...}``."""

from __future__ import annotations

from typing import Any


class CloudError(Exception):
    """Base of errors raised by cloud services (not HTTP-aware)."""


class AdminError(CloudError):
    """An administrative operation cannot be done (e.g. an edge already belongs to another site)."""


class ApiError(CloudError):
    """An error that maps to one HTTP response with a stable machine-readable ``code``."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


__all__ = ["AdminError", "ApiError", "CloudError"]
