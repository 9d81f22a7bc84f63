"""Users scoped to sites: which rows a user may read and which objects they may act on.

A user holds either every site (``sites is None``: admins made before migration 0011, and anyone
created without ``--sites``) or a set of sites. Every route applies one of these rules (the rules
are checked route by route in tests/cloud/test_site_scoping.py):

- lists filter their rows with :func:`site_clause` (or :func:`one_site` for services that take a
  single site); naming a site outside the user's set gives an empty answer or a 404, never rows;
- one object (an alert, a proposal, a stocktake run, a location, an edge) is looked up and then
  :func:`check_site` answers 404 for another site's object, the same answer as for a missing one;
- cross-site operations (global master data, imports, exports, the planner over every site, user
  administration) need a user of every site (:data:`AllSitesAdmin`, :func:`all_sites`), else 403.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import ColumnElement, and_, true

from cloud.api.deps import UserPrincipal, require_role
from cloud.core.errors import ApiError
from cloud.core.security import Role


def sees(user: UserPrincipal, site_id: str | None) -> bool:
    return user.sites is None or (site_id is not None and site_id in user.sites)


def site_clause(user: UserPrincipal, column: Any, site: str | None = None) -> ColumnElement[bool]:
    """Rows of ``site`` (when given) among the sites ``user`` holds."""
    clauses: list[ColumnElement[bool]] = []
    if site is not None:
        clauses.append(column == site)
    if user.sites is not None:
        clauses.append(column.in_(sorted(user.sites)))
    return and_(true(), *clauses)


def one_site(user: UserPrincipal, site: str | None) -> str | None:
    """The one site a single-site service should filter by (None: every site, all-sites users only).

    A user of one site gets that site by default; a user of several must name one.
    """
    if user.sites is None:
        return site
    if site is not None:
        check_site(user, site, f"site {site!r}")
        return site
    if len(user.sites) == 1:
        return next(iter(user.sites))
    raise ApiError(422, "site_required", f"name a site (site=...): you hold {', '.join(sorted(user.sites))}")


def check_site(user: UserPrincipal, site_id: str | None, what: str) -> None:
    """404 (as for a missing object) when ``site_id`` is not one of the user's sites."""
    if not sees(user, site_id):
        raise ApiError(404, "not_found", f"{what} does not exist")


def all_sites(role: Role) -> Callable[[UserPrincipal], Coroutine[Any, Any, UserPrincipal]]:
    """A dependency admitting users of ``role`` or higher who hold every site."""
    return require_role(role, every_site=True)


AllSitesAdmin = Annotated[UserPrincipal, Depends(all_sites(Role.admin))]

__all__ = [
    "AllSitesAdmin",
    "all_sites",
    "check_site",
    "one_site",
    "sees",
    "site_clause",
]
