"""The operator page: static files, session login/logout, and three small helper endpoints.

The page itself calls the ordinary ``/api/v1`` endpoints. ``cloud.api.deps.current_user`` hands
over to :func:`session_or_bearer_user` (see :func:`cloud.web.install`): a request with an
``Authorization`` header is authenticated exactly as before; one without it may use the session
cookie instead, and then every state-changing method must carry the session's CSRF token.
Roles are enforced by the same ``require_role`` checks either way.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.staticfiles import StaticFiles

from cloud.api import deps
from cloud.api.deps import DbConn, Engine, SettingsDep, UserPrincipal, ViewerUser, ZonesDep
from cloud.api.sites import sees, site_clause
from cloud.core.errors import ApiError
from cloud.masterdata import tables as masterdata_db
from cloud.stock import tables as stock_db
from cloud.web import sessions
from cloud.web.schemas import ItemIdentity, LogoutResult, SessionInfo, SgtinCandidates, ZoneLimitsRow
from devices.epc import decode_epc, encode_sgtin96, gs1_check_digit
from devices.errors import DecodeError

STATIC_DIR = Path(__file__).parent / "static"
COOKIE = "shelfsense_session"
SECURE_COOKIE = "__Host-shelfsense_session"  # the prefix makes browsers insist on Secure, Path=/
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# The page needs nothing from elsewhere and no inline code: anything injected cannot run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

router = APIRouter(tags=["web"])


# --- authentication -------------------------------------------------------------------------------


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(SECURE_COOKIE) or request.cookies.get(COOKIE)


async def session_or_bearer_user(
    request: Request, engine: AsyncEngine, authorization: str | None
) -> UserPrincipal:
    """The user of a bearer token, else of the session cookie (CSRF-checked for writes)."""
    token = session_cookie(request)
    if authorization is not None or token is None:
        return await deps.bearer_user(engine, authorization)
    user = await sessions.session_user(engine, token)
    if user is None:
        raise ApiError(401, "unauthenticated", "session expired or ended; log in again")
    csrf = request.headers.get(CSRF_HEADER)
    if request.method not in SAFE_METHODS and not sessions.csrf_matches(token, csrf):
        raise ApiError(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")
    return UserPrincipal(name=user.name, role=user.role, sites=user.sites)


class _LoginLimiter:
    """Failed logins per client address in a sliding window; bounded (oldest address evicted)."""

    def __init__(self, max_failures: int = 10, window_s: float = 300.0, max_clients: int = 10_000) -> None:
        self.max_failures, self.window_s, self.max_clients = max_failures, window_s, max_clients
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        if times:
            self._failures[client] = times
        else:
            self._failures.pop(client, None)
        return times

    def blocked(self, client: str) -> bool:
        return len(self._recent(client, time.monotonic())) >= self.max_failures

    def failed(self, client: str) -> None:
        now = time.monotonic()
        self._failures[client] = [*self._recent(client, now), now]
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str | None, Field(max_length=512)] = None
    username: Annotated[str | None, Field(max_length=128)] = None
    password: Annotated[str | None, Field(max_length=1024)] = None


def _secure(request: Request, settings: SettingsDep) -> bool:
    mode = settings.cloud.web.secure_cookies
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _check_origin(request: Request) -> None:
    """Refuse a cross-site login or logout (login CSRF), on top of SameSite=Strict and JSON-only."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise ApiError(403, "cross_origin", "cross-origin request refused")


def _session_body(name: str, role: str, token: str) -> dict[str, str]:
    return {"user": name, "role": role, "csrf": sessions.csrf_token(token)}


@router.post("/web/login", responses={200: {"model": SessionInfo, "description": "logged in"}})
async def login(request: Request, body: LoginBody, engine: Engine, settings: SettingsDep) -> JSONResponse:
    """Start a session from an API token or a username + password; sets the session cookie."""
    _check_origin(request)
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "send JSON")
    limiter: _LoginLimiter = request.app.state.web_login_limiter
    client = request.client.host if request.client else "unknown"
    if limiter.blocked(client):
        raise ApiError(429, "too_many_attempts", "too many failed logins; wait a few minutes")
    if body.token:
        user = await sessions.user_for_token(engine, body.token.strip())
    elif body.username and body.password:
        user = await sessions.user_for_password(engine, body.username, body.password)
    else:
        raise ApiError(422, "validation_error", "give a token, or a username and a password")
    if user is None:
        limiter.failed(client)
        raise ApiError(401, "login_failed", "wrong token, user name or password")
    lifetime = timedelta(hours=settings.cloud.web.session_hours)
    token = await sessions.create_session(engine, user, lifetime)
    response = JSONResponse(_session_body(user.name, user.role.name, token))
    secure = _secure(request, settings)
    response.set_cookie(
        SECURE_COOKIE if secure else COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/web/logout", responses={200: {"model": LogoutResult, "description": "logged out"}})
async def logout(request: Request, engine: Engine) -> JSONResponse:
    """End the session (CSRF-checked: a forged logout is a nuisance worth refusing)."""
    _check_origin(request)
    token = session_cookie(request)
    if token is not None:
        if not sessions.csrf_matches(token, request.headers.get(CSRF_HEADER)):
            raise ApiError(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")
        await sessions.end_session(engine, token)
    response = JSONResponse({"ended": token is not None})
    for name in (COOKIE, SECURE_COOKIE):
        response.delete_cookie(name, path="/", secure=name == SECURE_COOKIE, httponly=True, samesite="strict")
    return response


@router.get("/web/session", response_model=SessionInfo)
async def session_info(request: Request, engine: Engine) -> dict[str, str]:
    """Who is logged in and the CSRF token for this session (the page calls it on load)."""
    token = session_cookie(request)
    user = await sessions.session_user(engine, token) if token is not None else None
    if token is None or user is None:
        raise ApiError(401, "unauthenticated", "not logged in")
    return _session_body(user.name, user.role.name, token)


# --- helpers for the item trace -------------------------------------------------------------------


@router.get("/web/api/sgtin", response_model=SgtinCandidates)
async def gtin_serial_to_epc(
    conn: DbConn,
    user: ViewerUser,
    gtin: Annotated[str, Query(pattern=r"^\d{8}$|^\d{12,14}$")],
    serial: Annotated[int, Query(ge=0, lt=2**38)],
    prefix_length: Annotated[int | None, Query(ge=6, le=12, description="GS1 company prefix digits")] = None,
) -> dict[str, Any]:
    """SGTIN-96 EPCs (filter 1) for a GTIN + serial. Without the company prefix length every
    length 6..12 is a candidate; ``known`` lists the candidates this cloud has seen."""
    gtin14 = gtin.zfill(14)
    if gs1_check_digit(gtin14[:13]) != gtin14[13]:
        raise ApiError(422, "bad_check_digit", f"GTIN {gtin} has a wrong check digit")
    lengths = [prefix_length] if prefix_length is not None else list(range(6, 13))
    candidates = []
    for length in lengths:
        prefix, reference = gtin14[1 : 1 + length], gtin14[0] + gtin14[1 + length : 13]
        candidates.append(encode_sgtin96(prefix, reference, serial))
    seen: set[str] = set()
    for table in (stock_db.stock_items, masterdata_db.items, stock_db.tag_observations):
        query = select(table.c.epc).where(table.c.epc.in_(candidates))
        if "site_id" in table.c:  # items are master data of every site; sightings are per site
            query = query.where(site_clause(user, table.c.site_id))
        seen.update(r[0] for r in await conn.execute(query.distinct()))
    known = [c for c in candidates if c in seen]
    return {"gtin": gtin14, "serial": serial, "candidates": candidates, "known": known}


@router.get("/web/api/items/{epc}/identity", response_model=ItemIdentity)
async def item_identity(conn: DbConn, _user: ViewerUser, epc: str) -> dict[str, Any]:
    """What an EPC encodes (GS1 decode) and the registered product and lot, if any."""
    try:
        identity = decode_epc(epc.strip())
    except DecodeError as exc:
        raise ApiError(422, "bad_epc", str(exc)) from exc
    i, p, lots = masterdata_db.items, masterdata_db.products, masterdata_db.lots
    lot_of_item = (lots.c.sku == i.c.sku) & (lots.c.lot_code == i.c.lot_code)
    query = (
        select(i.c.sku, i.c.lot_code, p.c.name, p.c.gtin, lots.c.expiry)
        .select_from(i.join(p, p.c.sku == i.c.sku).outerjoin(lots, lot_of_item))
        .where(i.c.epc == identity.raw_hex)
    )
    row = (await conn.execute(query)).mappings().first()
    return {
        "epc": identity.raw_hex,
        "scheme": identity.scheme,
        "uri": identity.uri,
        "gtin": identity.gtin,
        "serial": identity.serial,
        "registered": dict(row) if row is not None else None,
    }


@router.get("/web/api/zones", response_model=list[ZoneLimitsRow])
async def zone_limits(zones: ZonesDep, user: ViewerUser, site: str | None = None) -> list[dict[str, Any]]:
    """The configured limits of the zones of the user's sites (the live-sensor view draws them)."""
    return [
        {
            "site_id": z.site_id,
            "zone": z.id,
            "min_temp_c": z.min_temp_c,
            "max_temp_c": z.max_temp_c,
            "max_humidity": z.max_humidity,
        }
        for z in sorted(zones.values(), key=lambda z: (z.site_id, z.id))
        if sees(user, z.site_id) and (site is None or z.site_id == site)
    ]


# --- the page -------------------------------------------------------------------------------------


class _Static(StaticFiles):
    """Package files with the page's security headers."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(SECURITY_HEADERS)
        return response


@router.get("/ui", include_in_schema=False)
async def ui_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


def static_files() -> StaticFiles:
    return _Static(directory=STATIC_DIR)


def login_limiter() -> _LoginLimiter:
    return _LoginLimiter()


__all__ = ["COOKIE", "CSRF_HEADER", "SECURE_COOKIE", "router", "session_or_bearer_user", "static_files"]
