"""``/openapi.json`` documents the API for people and programs: a walk over all of it.

Served by a real server: a bearer security scheme that every /v1 operation requires (and
health, readiness and metrics do not), a summary written for people and a description on
every operation, a description on every parameter and on every field of every schema, the
error envelope on every error answer, and real examples (``invoice.paid``) wherever a
pattern would otherwise make Swagger UI show regex noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dispatcher.config import Settings

from .conftest import TEST_SETTINGS
from .databases import Databases
from .harness import AppServer

METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
ERROR_REF = "#/components/schemas/ErrorOut"


@pytest.fixture(scope="module")
def schema(databases: Databases) -> Iterator[dict[str, Any]]:
    settings = Settings(**{**TEST_SETTINGS, "database_url": databases.new(), "ui_enabled": True})
    with AppServer(settings, workers=False) as app:
        response = httpx.get(app.url + "/openapi.json", timeout=30)
        assert response.status_code == 200, response.text[:300]
        yield response.json()


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def test_the_dashboard_and_the_docs_pages_are_not_operations(schema):
    paths = list(schema["paths"])
    assert "/v1/events" in paths
    assert not [p for p in paths if p.startswith(("/ui", "/docs", "/redoc"))], paths


def test_api_keys_are_an_http_bearer_scheme_that_every_v1_operation_requires(schema):
    schemes = schema["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items()
              if s.get("type") == "http" and s.get("scheme") == "bearer"]
    assert "apiKey" in bearer and schemes["apiKey"].get("description")
    assert "security" not in schema  # no global requirement: per operation
    for method, path, operation in operations(schema):
        if path.startswith("/v1/"):
            assert operation.get("security") == [{"apiKey": []}], f"{method} {path}"
        elif path in ("/healthz", "/readyz"):
            assert not operation.get("security"), f"{method} {path}"
        elif path == "/metrics":
            # None needed ({}), unless DISPATCHER_METRICS_TOKEN is set.
            assert {} in operation["security"], operation.get("security")
        else:
            pytest.fail(f"an operation nobody classified: {method} {path}")


def test_every_operation_has_our_summary_and_a_description(schema):
    summaries = set()
    for method, path, operation in operations(schema):
        what = f"{method} {path}"
        summary = operation.get("summary", "")
        assert summary.strip(), what
        # FastAPI's own is the function's name title-cased ("Post Event"); the operationId
        # starts with that name ("post_event_v1_events_post").
        fastapis = operation["operationId"].startswith(summary.lower().replace(" ", "_") + "_")
        assert not (fastapis and summary == summary.title()), f"{what}: {summary!r}"
        assert summary not in summaries, f"{what}: the summary {summary!r} is used twice"
        summaries.add(summary)
        assert len(operation.get("description", "").strip()) >= 20, what
        if path.startswith("/v1/"):
            assert "Roles:" in operation["description"], f"{what}: say which roles may call it"
    assert "Publish an event" in summaries


def test_every_parameter_has_a_description(schema):
    for method, path, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            assert parameter.get("description", "").strip(), \
                f"{method} {path}: {parameter['in']} parameter {parameter['name']}"


def _properties(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of every object schema inside ``node``, nested ones too."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{where}.{name}", prop
            yield from _properties(prop, f"{where}.{name}")
        for key, value in node.items():
            # Examples are data, not schemas: an example JSON Schema's "properties" are not
            # fields of ours.
            if key not in ("properties", "examples", "example"):
                yield from _properties(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value, where)


def test_every_field_of_every_schema_has_a_description(schema):
    components = schema["components"]["schemas"]
    assert {"EventIn", "SubscriptionOut", "ErrorOut", "ErrorBody"} <= set(components)
    fields = list(_properties(components, "schemas"))
    assert len(fields) > 80
    missing = [where for where, prop in fields if not prop.get("description", "").strip()]
    assert not missing, missing


def test_every_error_answer_is_the_error_envelope(schema):
    for method, path, operation in operations(schema):
        errors = {status: r for status, r in operation["responses"].items()
                  if status[0] in "45"}
        if path.startswith("/v1/"):
            assert {"401", "403"} <= set(errors), f"{method} {path}"
        for status, response in errors.items():
            content = response.get("content", {}).get("application/json", {})
            assert content.get("schema", {}).get("$ref") == ERROR_REF, \
                f"{method} {path} {status}: {response}"
            assert response.get("description", "").strip(), f"{method} {path} {status}"
            example = content["example"]["error"]
            assert example["code"] in response["description"] and example["message"], \
                f"{method} {path} {status}: {example}"
    error = schema["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["error"]
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["code", "message"]


def _has_example(node: dict[str, Any], components: dict[str, Any]) -> bool:
    if any(k in node for k in ("examples", "example", "default", "const", "enum")):
        return True
    branches = [b for b in node.get("anyOf", []) if b != {"type": "null"}]
    return bool(branches) and all(_has_example(b, components) for b in branches)


def _patterned(node: Any) -> bool:
    if isinstance(node, dict):
        return "pattern" in node or any(_patterned(v) for v in node.values())
    if isinstance(node, list):
        return any(_patterned(v) for v in node)
    return False


def test_examples_are_real_values_not_generated_from_patterns(schema):
    components = schema["components"]["schemas"]
    assert components["EventIn"]["properties"]["type"]["examples"] == ["invoice.paid"]
    assert components["EventOut"]["properties"]["type"]["examples"] == ["invoice.paid"]
    assert components["EventIn"]["properties"]["data"]["examples"][0]["amount"] == 4200
    # Swagger UI makes up a value from a field's pattern when it has no example: every field
    # with a pattern in it has a real example instead.
    noisy = [where for where, prop in _properties(components, "schemas")
             if _patterned(prop) and not _has_example(prop, components)]
    assert not noisy, noisy
