"""User administration (admins of every site): create users scoped to sites, revoke tokens, disable.

The same operations as ``shelfsense cloud admin`` (cloud.admin). A revoked token or a disabled user
is refused from the next request on, and so is every page session started from it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cloud.admin import (
    create_user_async,
    list_users_async,
    revoke_token_async,
    revoke_user_tokens_async,
    set_user_disabled_async,
)
from cloud.api.deps import Engine
from cloud.api.sites import AllSitesAdmin
from cloud.core.errors import AdminError, ApiError

router = APIRouter(prefix="/api/v1", tags=["users"])


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128)]
    role: Annotated[str, Field(pattern="^(viewer|operator|admin)$")] = "viewer"
    sites: Annotated[
        list[Annotated[str, Field(max_length=128)]] | None,
        Field(max_length=1000, description='site ids, or ["*"] for every site; omitted: every site'),
    ] = None


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, Field(min_length=1, max_length=512)]


class UserRow(BaseModel):
    name: str
    role: str
    sites: list[str] | None = Field(description="null: every site")
    disabled: bool
    tokens: int = Field(description="live (unrevoked) tokens")


class UserCreated(BaseModel):
    user: str
    role: str
    sites: list[str] | None = Field(description="as asked; null: every site")
    token: str = Field(description="the new API token, shown once")


class UserDisabled(BaseModel):
    user: str
    disabled: bool


def _not_found(exc: AdminError) -> ApiError:
    return ApiError(404, "not_found", str(exc))


@router.get("/users", response_model=list[UserRow])
async def list_users(engine: Engine, _admin: AllSitesAdmin) -> list[dict[str, Any]]:
    return await list_users_async(engine)


@router.post("/users", status_code=201, response_model=UserCreated)
async def create_user(body: UserCreate, engine: Engine, _admin: AllSitesAdmin) -> dict[str, Any]:
    """Create a user (or change its role and sites) and issue a token, shown once."""
    try:
        token = await create_user_async(engine, body.name, body.role, sites=body.sites)
    except AdminError as exc:
        raise ApiError(422, "invalid_user", str(exc)) from exc
    return {"user": body.name, "role": body.role, "sites": body.sites, "token": token}


async def _set_disabled(engine: Engine, name: str, disabled: bool) -> dict[str, Any]:
    try:
        await set_user_disabled_async(engine, name, disabled)
    except AdminError as exc:
        raise _not_found(exc) from exc
    return {"user": name, "disabled": disabled}


@router.post("/users/{name}/disable", response_model=UserDisabled)
async def disable_user(name: str, engine: Engine, _admin: AllSitesAdmin) -> dict[str, Any]:
    """Refuse the user's tokens and end their page sessions."""
    return await _set_disabled(engine, name, True)


@router.post("/users/{name}/enable", response_model=UserDisabled)
async def enable_user(name: str, engine: Engine, _admin: AllSitesAdmin) -> dict[str, Any]:
    return await _set_disabled(engine, name, False)


@router.delete("/users/{name}/tokens")
async def revoke_user_tokens(name: str, engine: Engine, _admin: AllSitesAdmin) -> dict[str, int]:
    """Revoke every token of a user."""
    try:
        return {"revoked": await revoke_user_tokens_async(engine, name)}
    except AdminError as exc:
        raise _not_found(exc) from exc


@router.post("/tokens/revoke")
async def revoke_token(body: TokenBody, engine: Engine, _admin: AllSitesAdmin) -> dict[str, bool]:
    """Revoke one token (user or edge) given its value; ``revoked`` is false if unknown or revoked."""
    return {"revoked": await revoke_token_async(engine, body.token.strip())}
