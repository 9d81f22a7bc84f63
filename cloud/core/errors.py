"""The cloud's error tree. Every error response body is ``{"detail": ..., "code": ...}``.

A domain error says what it means over HTTP itself: its class's ``status_code`` and ``code`` (a
stable, machine-readable word), optional ``headers`` and extra body fields (:meth:`CloudError.body`).
One exception handler (:mod:`cloud.api.handlers`) answers every :class:`CloudError` from these, so
routes never translate domain errors by hand; they translate only third-party exceptions at the
boundary (a body that is not UTF-8, a driver's refusal).
"""

from __future__ import annotations

from typing import Any, ClassVar


class CloudError(Exception):
    """Base of errors raised by cloud services; subclasses set their HTTP ``status_code`` and ``code``."""

    status_code: ClassVar[int] = 500
    code: str = "error"
    headers: dict[str, str] | None = None

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "code": self.code}


class AdminError(CloudError):
    """An administrative operation cannot be done (e.g. an edge already belongs to another site);
    what it means over HTTP depends on the operation, so the routes that call one say it."""


class ApiError(CloudError):
    """An error that maps to one HTTP response, status and code given per instance (for what is
    not a domain error: refused requests, third-party exceptions translated at the boundary)."""

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
        self.status_code = status_code  # type: ignore[misc]  # per instance here
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, **self.extra}


__all__ = ["AdminError", "ApiError", "CloudError"]
