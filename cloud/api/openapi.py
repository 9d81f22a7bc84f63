"""The API's own description: ``/docs`` served without internet, and an ``openapi.json`` that says
how requests authenticate and what an error body really looks like.

Swagger UI's files come from the ``swagger-ui-py`` package (Swagger UI 5, which renders the
OpenAPI 3.1 FastAPI writes) and are served under ``/docs/static``: a site without internet access
still gets a working ``/docs``. ReDoc has no packaged copy, so it is off rather than blank.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from cloud.api.schemas import ErrorBody

DOCS_URL = "/docs"
ASSETS_URL = "/docs/static"
ERROR_SCHEMA = "ErrorBody"
BEARER_SCHEME = "bearer"


def swagger_assets_dir() -> str:
    """Where the installed Swagger UI distribution keeps ``swagger-ui-bundle.js`` and its CSS."""
    return str(files("swagger_ui") / "static")


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` from local assets and replace the generated schema with :func:`openapi_schema`.

    The app must be created with ``docs_url=None, redoc_url=None``.
    """
    app.mount(ASSETS_URL, StaticFiles(directory=swagger_assets_dir()), name="docs-static")

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    app.add_api_route(DOCS_URL, swagger_ui, include_in_schema=False, methods=["GET"])

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema with every validation error documented as our real ``ErrorBody``.

    FastAPI documents 422 as its own ``HTTPValidationError`` (``{"detail": [...]}``), but
    ``cloud.main`` answers every error, 422 included, with ``{"detail", "code", "errors"?}``.
    """
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in error_schema.pop("$defs", {}).items():
        schemas[name] = sub
    schemas[ERROR_SCHEMA] = error_schema
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                responses.setdefault("401", {"description": "Missing, unknown or revoked token"})
                responses.setdefault("403", {"description": "The token may not do this"})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {"application/json": {"schema": ref}}
    return schema


__all__ = ["ASSETS_URL", "BEARER_SCHEME", "DOCS_URL", "install_docs", "openapi_schema", "swagger_assets_dir"]
