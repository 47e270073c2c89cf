"""The OpenAPI document: valid OpenAPI 3.1, generated without warnings, complete, served with
its Swagger UI from package assets (no CDN)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular import validation

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"


@pytest.fixture(scope="module")
def document(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_document_matches_the_code_without_a_single_warning(tmp_path):
    # --fail-on-warn: any view, field or parameter the generator cannot describe fails here.
    # (--validate is the check below, done with the fast validator on the served document.)
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").stat().st_size > 10_000


def test_the_served_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    # The OpenAPI 3.1 JSON schema drf-spectacular ships, checked with the fast validator.
    meta = json.loads((Path(validation.__file__).parent / "openapi_3_1_schema.json").read_text())
    errors = [str(e) for e in jsonschema_rs.validator_for(meta).iter_errors(document)]
    assert errors == []
    assert "Idempotency-Key" in document["info"]["description"]


def _api_routes() -> dict[str, set[str]]:
    """Every route under /api/v1/ with the methods its view implements."""
    routes: dict[str, set[str]] = {}

    def walk(resolver: URLResolver, prefix: str) -> None:
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry, route)
            elif isinstance(entry, URLPattern) and route.startswith(API_PREFIX):
                view = entry.callback.cls
                methods = {m for m in ("get", "post", "put", "patch", "delete")
                           if hasattr(view, m)}
                path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
                routes[path] = methods

    walk(get_resolver(), "")
    return routes


def test_every_endpoint_and_method_is_in_the_document(document):
    routes = _api_routes()
    assert len(routes) >= 25
    for path, methods in routes.items():
        assert path in document["paths"], path
        assert set(document["paths"][path]) - {"parameters"} == methods, path


def test_every_operation_is_described_with_its_errors(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary") and operation.get("tags"), where
            assert operation["operationId"].replace("_", "").isalnum(), where
            responses = operation["responses"]
            assert any(code.startswith("2") for code in responses), where
            for code in ("401", "403", "429"):
                assert "application/problem+json" in responses[code]["content"], where
            if "{" in path:
                assert "404" in responses, where
            if method in ("post", "put", "patch", "delete"):
                assert "409" in responses, where
            assert "Retry-After" in responses["429"]["headers"], where


def test_every_field_is_described(document):
    undocumented = [f"{name}.{prop}"
                    for name, component in document["components"]["schemas"].items()
                    for prop, spec in (component.get("properties") or {}).items()
                    if not spec.get("description")]
    assert undocumented == []


def test_writes_carry_an_example_and_request_bodies_refuse_unknown_fields(document):
    creates = document["paths"]["/api/v1/tenants/{tenant_slug}/clusters/"]["post"]
    assert creates["requestBody"]["content"]["application/json"]["examples"]
    component = creates["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = component.rsplit("/", 1)[1]
    assert document["components"]["schemas"][name]["additionalProperties"] is False
    params = {p["name"]: p for p in creates["parameters"]}
    assert params["Idempotency-Key"]["in"] == "header"
    assert params["tenant_slug"]["examples"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["tokenAuth"]["scheme"] == "bearer"


def test_swagger_ui_is_served_from_package_assets_not_a_cdn():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in page
    assert not re.search(r"https?://(cdn|unpkg|fastly|cdnjs)", page)
    asset = re.search(r'src="([^"]*swagger-ui-bundle\.js)"', page).group(1)
    assert Client().get(asset).status_code == 200


def test_redoc_is_served_from_package_assets_not_a_cdn():
    response = Client().get("/api/redoc/")
    assert response.status_code == 200
    page = response.content.decode()
    # Every script, stylesheet and font the page loads comes from this server.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page), page
    sources = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert any("drf_spectacular_sidecar/redoc" in s for s in sources)
    assert all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    for source in sources:
        assert Client().get(source).status_code == 200
