"""``/docs`` works without internet and ``openapi.json`` describes the API as it really answers:
a bearer security scheme, the real error body, typed responses that validate."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from replenish_fixtures import SITE, App, history, master_data, replenish_settings, running_app

from cloud.api.openapi import swagger_assets_dir


@pytest.fixture
async def app(tmp_path: Any) -> AsyncIterator[App]:
    async for a in running_app(replenish_settings(f"sqlite+aiosqlite:///{tmp_path}/docs.db")):
        yield a


async def test_docs_page_references_only_local_assets_and_they_are_served(app: App) -> None:
    page = await app.client.get("/docs")
    assert page.status_code == 200
    html = page.text
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
    assert urls, html
    external = [u for u in urls if re.match(r"(?i)^(https?:)?//", u)]
    assert external == [], external
    assert "cdn" not in html.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/static/{asset}" in urls
        response = await app.client.get(f"/docs/static/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 10_000
        with open(f"{swagger_assets_dir()}/{asset}", "rb") as f:
            assert response.content == f.read()
    # Swagger UI 5 renders OpenAPI 3.1 (4.x shows "Unable to render this definition").
    bundle = (await app.client.get("/docs/static/swagger-ui-bundle.js")).text
    assert "isOAS31" in bundle
    assert (await app.client.get("/redoc")).status_code == 404  # no CDN-only page left behind


async def test_openapi_declares_bearer_scheme_and_real_error_body(app: App) -> None:
    spec = (await app.client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": spec["components"]["securitySchemes"]["bearer"]["description"],
        }
    }
    stock = spec["paths"]["/api/v1/stock"]["get"]
    assert stock["security"] == [{"bearer": []}]
    assert "authorization" not in {p["name"].lower() for p in stock.get("parameters", [])}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                if status[0] in "45":
                    assert response["content"]["application/json"]["schema"] == error_ref, (method, path)
            if op.get("security"):
                assert {"401", "403"} <= set(op["responses"]), (method, path)
    # The documented body is the one the app sends: an invalid query answers with it.
    response = await app.get("vera", "/api/v1/stock", limit=0)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error" and body["errors"][0]["loc"] == "query.limit"
    _validate(spec, error_ref, body)
    unauthenticated = await app.client.get("/api/v1/stock")
    assert unauthenticated.status_code == 401
    _validate(spec, error_ref, unauthenticated.json())


def _validate(spec: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Validate ``instance`` against ``schema`` (a part of ``spec``; OpenAPI 3.1 = JSON Schema 2020-12)."""
    anchored = json.loads(json.dumps(schema).replace('"#/components/', '"urn:openapi#/components/'))
    registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(spec))
    Draft202012Validator(anchored, registry=registry).validate(instance)


@pytest.fixture
async def planned(app: App) -> tuple[App, int]:
    """A cloud with master data, 30 days of history and one replenishment run."""
    await master_data(app.engine)
    await history(app.engine)
    run = await app.post("ada", "/api/v1/proposals/run", {"site": SITE})
    assert run.status_code == 200, run.text
    spec = (await app.client.get("/openapi.json")).json()
    _validate(spec, _response_schema(spec, "/api/v1/proposals/run", "post"), run.json())
    return app, run.json()["sites"][0]["proposals"][0]["id"]


def _response_schema(spec: dict[str, Any], path: str, method: str, status: str = "200") -> dict[str, Any]:
    content = spec["paths"][path][method]["responses"][status]["content"]
    media = "application/json" if "application/json" in content else next(iter(content))
    schema: dict[str, Any] = content[media]["schema"]
    return schema


def _untyped(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """An answer documented as any object (or nothing at all)."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if schema == {}:
        return True
    values = schema.get("additionalProperties", True)
    return schema.get("type") == "object" and "properties" not in schema and not isinstance(values, dict)


# Path parameters of the GET operations checked below; each names something the fixture made.
_PATH_VALUES = {
    "proposal_id": "1",
    "sku": "P1",
    "site_id": SITE,
    "location_id": "backroom",
    "epc": "3034257BF7194E4000001A85",  # an SGTIN-96
}
# Required query parameters of the GET operations checked below.
_QUERY = {"/web/api/sgtin": {"gtin": "00614141007349", "serial": 314160}}
# Answers that are not one JSON schema: text (CSV, Prometheus), JSON-LD, or a choice of formats.
_NOT_JSON = {"/metrics", "/api/v1/master/{kind}/export", "/api/v1/proposals/export"}


async def test_every_get_answer_validates_against_its_documented_schema(planned: tuple[App, int]) -> None:
    app, proposal_id = planned
    approve = await app.post("oscar", f"/api/v1/proposals/{proposal_id}/approve", {"comment": "ok"})
    assert approve.status_code == 200, approve.text
    spec = (await app.client.get("/openapi.json")).json()
    _validate(spec, _response_schema(spec, "/api/v1/proposals/{proposal_id}/approve", "post"), approve.json())
    checked, skipped = [], []
    for path, operations in spec["paths"].items():
        if "get" not in operations or path in _NOT_JSON or path == "/web/session":  # session cookie only
            continue
        names = re.findall(r"{(\w+)}", path)
        if any(n not in _PATH_VALUES for n in names):
            skipped.append(path)
            continue
        url = re.sub(r"{(\w+)}", lambda m: _PATH_VALUES[m.group(1)], path)
        response = await app.get("ada", url, **_QUERY.get(path, {}))
        assert response.status_code in (200, 404), (url, response.text)
        schema = _response_schema(spec, path, "get", str(response.status_code))
        assert not _untyped(spec, schema), f"GET {path} documents an untyped answer"
        _validate(spec, schema, response.json())
        offsets = [t for t in _timestamps(response.json()) if not t.endswith("Z")]
        assert offsets == [], f"GET {path}: timestamps not in UTC 'Z' form: {offsets[:3]}"
        checked.append(path)
    for must in ("/api/v1/proposals", "/api/v1/proposals/{proposal_id}", "/api/v1/forecasts", "/api/v1/kpis"):
        assert must in checked
    for must in ("/api/v1/dead-stock", "/web/api/zones", "/web/api/sgtin", "/web/api/items/{epc}/identity"):
        assert must in checked
    assert len(checked) >= 20, (checked, skipped)


async def test_no_operation_documents_an_untyped_json_answer(app: App) -> None:
    """Every JSON success answer of every operation, the page's own endpoints included, has a schema
    with properties (or items of one)."""
    spec = (await app.client.get("/openapi.json")).json()
    untyped = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                documented = status.startswith("2") and schema is not None and path not in _NOT_JSON
                if documented and _untyped(spec, schema.get("items", schema)):
                    untyped.append(f"{method.upper()} {path} {status}")
    # The what-if report (cloud.whatif) is the one answer still documented as a plain object.
    assert untyped == ["POST /api/v1/whatif 200"], untyped
    session = _response_schema(spec, "/web/session", "get")
    assert session == {"$ref": "#/components/schemas/SessionInfo"}
    assert _response_schema(spec, "/web/login", "post") == session


def _timestamps(value: Any) -> list[str]:
    """Every date-time string in a JSON answer."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _timestamps(v)]
    if isinstance(value, list):
        return [t for v in value for t in _timestamps(v)]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?", value):
        return [value]
    return []


def test_documented_webhook_signature_example_is_what_the_cloud_sends() -> None:
    from pathlib import Path

    from cloud.notify.webhooks import verify_webhook, webhook_signature

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    example = re.search(r"`sha256=([0-9a-f]{64})`", doc)
    assert example is not None
    body = b'{"alert_id":"42","state":"raised"}'
    assert webhook_signature("my-secret", "1767225600", body) == f"sha256={example.group(1)}"
    assert verify_webhook("my-secret", "1767225600", body, f"sha256={example.group(1)}", now=1767225700)
