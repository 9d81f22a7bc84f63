"""FastAPI dependencies: database connection, settings, authenticated edge / user, role checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloud.api.read_gate import ENGINES_KEY
from cloud.core.config import ZoneKey
from cloud.core.errors import ApiError
from cloud.core.metrics import Metrics
from cloud.core.security import Role, hash_token, parse_bearer, parse_sites
from cloud.ingest import tables as ingest_db
from cloud.users import tables as users_db
from shelfsense.config import Settings, ZoneLimits

BEARER = {"WWW-Authenticate": "Bearer"}

# Declares the bearer scheme in openapi.json (Swagger UI's Authorize button); the header itself is
# read and checked below, so that every failure answers with our 401 body.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An edge token (ingest) or a user token (`shelfsense cloud user create`).",
)


async def authorization_header(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
) -> str | None:
    """The raw ``Authorization`` header."""
    return request.headers.get("authorization")


Authorization = Annotated[str | None, Depends(authorization_header)]


def get_engine(request: Request) -> AsyncEngine:
    """The main engine (ingest, writes, authentication); a request the read gate runs on its own
    loop gets that loop's (cloud.api.read_gate)."""
    engines: tuple[AsyncEngine, AsyncEngine] | None = request.scope.get(ENGINES_KEY)
    if engines is not None:
        return engines[0]
    engine: AsyncEngine = request.app.state.engine
    return engine


def get_read_engine(request: Request) -> AsyncEngine:
    """The read engine: its own pool and statement timeout (cloud.core.pools)."""
    engines: tuple[AsyncEngine, AsyncEngine] | None = request.scope.get(ENGINES_KEY)
    if engines is not None:
        return engines[1]
    engine: AsyncEngine = getattr(request.app.state, "read_engine", None) or request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def get_zones(request: Request) -> Mapping[ZoneKey, ZoneLimits]:
    zones: Mapping[ZoneKey, ZoneLimits] = request.app.state.zones
    return zones


ReadEngine = Annotated[AsyncEngine, Depends(get_read_engine)]


async def get_conn(engine: ReadEngine) -> AsyncIterator[AsyncConnection]:
    """A read connection (read pool); its implicit transaction gives one consistent snapshot per
    request."""
    async with engine.connect() as conn:
        yield conn


Engine = Annotated[AsyncEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ZonesDep = Annotated[Mapping[ZoneKey, ZoneLimits], Depends(get_zones)]
DbConn = Annotated[AsyncConnection, Depends(get_conn)]


@dataclass(frozen=True, slots=True)
class EdgePrincipal:
    edge_id: str
    site_id: str


@dataclass(frozen=True, slots=True)
class UserPrincipal:
    name: str
    role: Role
    sites: frozenset[str] | None = None  # None: every site (see cloud.api.sites)


# Built once (every request runs it): constructing the join and its cache key costs more Python
# than running it.
_TOKEN_QUERY = (
    select(
        users_db.tokens.c.kind,
        users_db.tokens.c.revoked_at,
        users_db.tokens.c.edge_id,
        ingest_db.edges.c.site_id,
        users_db.tokens.c.user_name,
        users_db.users.c.role,
        users_db.users.c.sites,
        users_db.users.c.disabled_at,
    )
    .select_from(
        users_db.tokens.outerjoin(
            ingest_db.edges, ingest_db.edges.c.edge_id == users_db.tokens.c.edge_id
        ).outerjoin(users_db.users, users_db.users.c.name == users_db.tokens.c.user_name)
    )
    .where(users_db.tokens.c.token_hash == bindparam("token_hash"))
)


async def _token_row(
    engine: AsyncEngine, authorization: str | None
) -> Row[Any, Any, Any, Any, Any, Any, Any, Any]:
    token = parse_bearer(authorization)
    if token is None:
        raise ApiError(401, "unauthenticated", "missing bearer token", headers=BEARER)
    async with engine.connect() as conn:
        row = (await conn.execute(_TOKEN_QUERY, {"token_hash": hash_token(token)})).one_or_none()
    if row is None or row.revoked_at is not None:
        # One answer for unknown and revoked: do not tell a caller which tokens once existed.
        raise ApiError(401, "unauthenticated", "invalid or revoked token", headers=BEARER)
    return row


async def current_edge(engine: Engine, metrics: MetricsDep, authorization: Authorization) -> EdgePrincipal:
    try:
        row = await _token_row(engine, authorization)
    except ApiError:
        metrics.refused("unauthenticated")
        raise
    if row.kind != "edge" or row.edge_id is None or row.site_id is None:
        metrics.refused("forbidden")
        raise ApiError(403, "forbidden", "this token does not belong to an edge")
    return EdgePrincipal(edge_id=row.edge_id, site_id=row.site_id)


# Another way a request may name its user: cloud.web.install puts the operator page's session
# cookie check here, as ``app.state.user_resolver``.
UserResolver = Callable[[Request, AsyncEngine, str | None], Awaitable[UserPrincipal]]


async def bearer_user(engine: AsyncEngine, authorization: str | None) -> UserPrincipal:
    """The user of a bearer token (401 or 403 otherwise)."""
    row = await _token_row(engine, authorization)
    if row.kind != "user" or row.role is None:
        raise ApiError(403, "forbidden", "this endpoint needs a user token")
    if row.disabled_at is not None:
        # The same answer as a revoked token: a disabled user's tokens are dead.
        raise ApiError(401, "unauthenticated", "invalid or revoked token", headers=BEARER)
    return UserPrincipal(name=row.user_name, role=Role[row.role], sites=parse_sites(row.sites))


async def current_user(request: Request, engine: Engine, authorization: Authorization) -> UserPrincipal:
    """The user of the bearer token, or whoever ``app.state.user_resolver`` (if set) accepts.

    A hook on ``app.state`` rather than ``app.dependency_overrides``: with any override registered,
    FastAPI analyses every dependency of every request on every route again (signatures, pydantic
    field models), about a millisecond of CPU per edge batch on the ingest path.
    """
    resolver: UserResolver | None = getattr(request.app.state, "user_resolver", None)
    if resolver is not None:
        return await resolver(request, engine, authorization)
    return await bearer_user(engine, authorization)


CurrentEdge = Annotated[EdgePrincipal, Depends(current_edge)]
CurrentUser = Annotated[UserPrincipal, Depends(current_user)]


def require_role(
    role: Role, *, every_site: bool = False
) -> Callable[[UserPrincipal], Coroutine[Any, Any, UserPrincipal]]:
    """A dependency that admits users whose role is ``role`` or higher (and, with ``every_site``,
    who hold every site: operations spanning sites, see cloud.api.sites)."""

    async def check(user: CurrentUser) -> UserPrincipal:
        if user.role < role:
            raise ApiError(403, "forbidden", f"this endpoint needs the {role.name} role")
        if every_site and user.sites is not None:
            raise ApiError(403, "forbidden", "this endpoint needs a user of all sites")
        return user

    return check


ViewerUser = Annotated[UserPrincipal, Depends(require_role(Role.viewer))]
OperatorUser = Annotated[UserPrincipal, Depends(require_role(Role.operator))]
AdminUser = Annotated[UserPrincipal, Depends(require_role(Role.admin))]

__all__ = [
    "AdminUser",
    "CurrentEdge",
    "CurrentUser",
    "DbConn",
    "EdgePrincipal",
    "Engine",
    "MetricsDep",
    "OperatorUser",
    "SettingsDep",
    "UserPrincipal",
    "UserResolver",
    "ViewerUser",
    "ZonesDep",
    "require_role",
]
