"""Exception handlers: every error answer is ``{"detail", "code"}`` (plus ``errors`` for bad input).

Besides our :class:`ApiError` and FastAPI's own validation, a few errors can only come from hostile
or absurd input that got past the request models: integers past the database's 64-bit columns
(``OverflowError`` from the SQLite driver, ``DataError`` from PostgreSQL), datetimes that overflow
when converted to UTC, JSON nested deeper than the parser's recursion limit, a pydantic model
validated inside a route. They are answered as client errors here, once, instead of a 500 each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.core.errors import ApiError, CloudError
from cloud.core.pools import is_query_timeout

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 10
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None, **extra: object
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code, **extra}, status_code=status, headers=headers)


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """pydantic's error list as ``[{loc, msg}]`` (at most ten; the input is never echoed back)."""
    return [
        {"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": str(e.get("msg", ""))}
        for e in list(errors)[:MAX_REPORTED_ERRORS]
    ]


def _invalid(errors: list[dict[str, str]]) -> JSONResponse:
    detail = "; ".join(f"{e['loc']}: {e['msg']}" if e["loc"] else e["msg"] for e in errors)
    return error_response(422, "validation_error", detail, errors=errors)


async def _cloud_error(_request: Request, exc: Exception) -> JSONResponse:
    """Every domain error (and :class:`ApiError`): its own status, code, headers and body. One
    that does not say its status (the base's 500) is a bug, not an answer: re-raised, so it is
    logged and answered as any other server error, without its message."""
    assert isinstance(exc, CloudError)
    if exc.status_code == CloudError.status_code and not isinstance(exc, ApiError):
        raise exc
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _invalid(field_errors(exc.errors()))


async def _model_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return _invalid(field_errors(exc.errors(include_input=False)))


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # Logged without the value: it came from the client and may be enormous.
    log.info("%s %s: value out of range (%s)", request.method, request.url.path, type(exc).__name__)
    msg = "a value in the request is outside the supported range or size"
    return error_response(422, "out_of_range", msg, errors=[{"loc": "", "msg": msg}])


async def _statement_error(request: Request, exc: Exception) -> JSONResponse:
    """A parameter the driver could not bind (``date value out of range``) or the database refused
    as data (PostgreSQL ``DataError``) came from the request; anything else is ours."""
    assert isinstance(exc, StatementError)
    if _is_data_error(exc):
        return await _out_of_range(request, exc)
    if is_query_timeout(exc):
        log.info("%s %s: read stopped at its statement timeout", request.method, request.url.path)
        msg = "the read took longer than the server allows; narrow it or retry later"
        return error_response(503, "query_timeout", msg, headers=_retry_after(request))
    raise exc


async def _pool_timeout(request: Request, _exc: Exception) -> JSONResponse:
    """No read connection came free in time (cloud.core.pools): busy, not broken."""
    msg = "the server is busy; retry later"
    return error_response(503, "busy", msg, headers=_retry_after(request))


def _retry_after(request: Request) -> dict[str, str]:
    settings = getattr(request.app.state, "settings", None)
    seconds = settings.cloud.reads.retry_after_s if settings is not None else 2
    return {"Retry-After": str(seconds)}


def _is_data_error(exc: StatementError) -> bool:
    """SQLite's driver raises ``OverflowError`` while binding; asyncpg raises its ``DataError`` (a
    ``ValueError``) for an argument out of int64 range, wrapped twice; PostgreSQL itself answers
    SQLSTATE class 22 (data exception: numeric out of range, string too long, datetime overflow)."""
    if isinstance(exc, DataError):
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, OverflowError | ValueError):
            return True
        if str(getattr(cause, "sqlstate", "") or "").startswith("22"):
            return True
        cause = cause.__cause__
    return False


async def _too_deep(_request: Request, _exc: Exception) -> JSONResponse:
    msg = "the request body is nested too deeply"
    return error_response(422, "too_deep", msg, errors=[{"loc": "", "msg": msg}])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CloudError, _cloud_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(ValidationError, _model_validation_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(StatementError, _statement_error)
    app.add_exception_handler(PoolTimeout, _pool_timeout)
    app.add_exception_handler(RecursionError, _too_deep)


__all__ = ["error_response", "field_errors", "install_error_handlers"]
