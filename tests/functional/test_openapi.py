"""GET /openapi.json: the routes the app serves and the document agree, and the document is valid.

Every operation has a success answer with a schema (or a declared non-JSON media type, a redirect or
no content), its error answers in the one error shape, the bearer key scheme when it needs a
permission, and that permission named in its description.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis.core.result import Err

from chalicelib.api.openapi import UnknownSchema, build
from chalicelib.api.registry import Operation
from chalicelib.config import settings
from tests.functional.conftest import STACK_ENV, Stack

METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The document as built from the declared operations (the app imported once, as in a container)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in STACK_ENV.items():
            env.setenv(name, value)
        settings.cache_clear()
        import app  # noqa: F401  (declares every route)
        from chalicelib.api.docs import _document

        built = json.loads(json.dumps(_document()))
    settings.cache_clear()
    return dict(built)


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def test_the_app_serves_the_document_publicly_and_it_describes_exactly_its_routes(
    stack: Stack, doc: dict[str, Any]
) -> None:
    from app import app

    # Public: read with no key, as a client generator would.
    answer = stack.http("GET", "/openapi.json", key=None)
    assert answer.status_code == 200, answer.body
    assert answer.json_body == doc
    served = {(method, path) for path, entries in app.routes.items() for method in entries}
    described = set(operations(doc))
    assert served - described == set(), "routes missing from /openapi.json"
    assert described - served == set(), "operations in /openapi.json the app does not serve"


def test_every_operation_has_its_success_and_error_answers(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    error = schemas["Error"]
    assert error["required"] == ["error"]
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message", "details"}
    # pydantic qualifies a name with its module when two different models share it: one name, one schema.
    assert [name for name in schemas if "__" in name] == [], "two different body models share a name"
    for (method, path), op in operations(doc).items():
        where = f"{method} {path}"
        answers = op["responses"]
        successes = {int(code): answer for code, answer in answers.items() if int(code) < 400}
        assert successes, where
        for code, answer in successes.items():
            content = answer.get("content", {})
            if code == 204:
                assert not content, where
            elif 300 <= code < 400:
                assert "Location" in answer["headers"], where
            else:
                assert content, f"{where} {code} has no body description"
                for media, body in content.items():
                    if media == "application/json":
                        ref = body["schema"].get("$ref", "")
                        assert ref.startswith("#/components/schemas/"), f"{where} {code} has no JSON schema"
                        assert ref.rsplit("/", 1)[1] in schemas, where
                    else:
                        assert body["schema"]["type"] == "string", where
        errors = {int(code): answer for code, answer in answers.items() if int(code) >= 400}
        assert 400 in errors, where
        takes_body = "requestBody" in op
        if op["security"]:
            assert {401, 403} <= set(errors), where
        if "{" in path:
            assert 404 in errors, where
        if takes_body:
            assert {413, 415, 422} <= set(errors), where
        for code, answer in errors.items():
            assert 400 <= code < 500, f"{where} documents a {code}"
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, where
        path_params = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert path_params == set(re.findall(r"{([^}]+)}", path)), where


def test_marketer_routes_carry_the_key_scheme_and_their_permission(doc: dict[str, Any]) -> None:
    from chalicelib.api.registry import OPERATIONS

    scheme = doc["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for key, op in operations(doc).items():
        declared = OPERATIONS[key]
        if declared.permission is None:
            assert op["security"] == [], key
            assert "Public" in op["description"], key
        else:
            assert op["security"] == [{"apiKey": []}], key
            assert f"`{declared.permission}`" in op["description"], key
            assert op["x-permission"] == declared.permission


def test_request_bodies_are_described_per_content_type(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    submission = ops[("POST", "/forms/{form_key}/submissions")]["requestBody"]["content"]
    assert set(submission) == {"application/json", "application/x-www-form-urlencoded"}
    assert {b["schema"]["$ref"] for b in submission.values()} == {"#/components/schemas/FormSubmission"}
    created = ops[("POST", "/templates")]["requestBody"]
    assert created["required"] is True
    assert set(created["content"]) == {"application/json"}
    listed = {p["name"] for p in ops[("GET", "/templates")]["parameters"]}
    assert {"cursor", "limit"} <= listed


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    # schemathesis reads every operation of it without an error.
    loaded = schemathesis.openapi.from_dict(doc)
    results = list(loaded.get_all_operations())
    assert results
    broken = [r.err() for r in results if isinstance(r, Err)]
    assert broken == []
    assert len(results) == len(operations(doc))


def test_a_route_naming_an_unknown_schema_cannot_be_described() -> None:
    op = Operation("GET", "/nothing", "Nothing", None, "public", response="NoSuchSchema")
    with pytest.raises(UnknownSchema, match="NoSuchSchema"):
        build({op.key: op}, max_body=1024)
