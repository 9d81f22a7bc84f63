"""Bearer tokens: random, shown once, stored only as SHA-256 hashes.

A token is ``sse_`` (edge) or ``ssu_`` (user) followed by ``secrets.token_urlsafe(32)``
(256 bits), so a plain hash is enough: there is nothing to brute-force, and a fast lookup by hash
keeps authentication to one indexed query. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from enum import IntEnum

EDGE_TOKEN_PREFIX = "sse_"
USER_TOKEN_PREFIX = "ssu_"


class Role(IntEnum):
    """User roles, ordered: a higher role may do everything a lower one may."""

    viewer = 1
    operator = 2
    admin = 3


SITES_SEPARATOR = ","


def parse_sites(value: str | None) -> frozenset[str] | None:
    """The stored ``users.sites`` column as a set; None (every site) for NULL."""
    if value is None:
        return None
    return frozenset(s for s in value.split(SITES_SEPARATOR) if s)


def format_sites(sites: Iterable[str] | None) -> str | None:
    """``users.sites`` for a set of sites; None (NULL) means every site."""
    return None if sites is None else SITES_SEPARATOR.join(sorted(set(sites)))


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


__all__ = [
    "EDGE_TOKEN_PREFIX",
    "USER_TOKEN_PREFIX",
    "Role",
    "format_sites",
    "hash_token",
    "new_token",
    "parse_bearer",
    "parse_sites",
]
