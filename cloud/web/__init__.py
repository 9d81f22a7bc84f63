"""The operator web page, served by the cloud service itself (no build step, no CDN).

``install(app)`` adds the page (``/ui/``), its static files (``/ui/static``), the session endpoints
(``/web/login``, ``/web/logout``, ``/web/session``) and lets the page's session cookie stand in
for a bearer token on the ``/api/v1`` endpoints (CSRF-checked for writes).
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the page to ``app`` (unless ``[cloud.web] enabled = false``)."""
    # Imported here: cloud.tables imports cloud.web.tables, so this package must not import
    # cloud.api (which imports cloud.core.db) at module level.
    from cloud.api import deps
    from cloud.web import routes

    settings = app.state.settings
    if not settings.cloud.web.enabled:
        return
    app.state.web_login_limiter = routes.login_limiter()
    app.include_router(routes.router)
    app.mount("/ui/static", routes.static_files(), name="web-static")
    # Every role check (require_role) goes through deps.current_user, which hands over to this: bearer
    # tokens stay exactly as they were and the session cookie is added. Not a dependency override:
    # any override makes FastAPI re-analyse every dependency of every request (see current_user).
    resolver: deps.UserResolver = routes.session_or_bearer_user
    app.state.user_resolver = resolver


__all__ = ["install"]
