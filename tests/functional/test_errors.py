"""Bad requests get a 4xx answer in the one error shape and change nothing.

`{"error": {"code", "message", "details"}}`: a body that is not JSON (400), not an object, of a wrong
type or with an unknown field (422, every problem with its path), a duplicate email on create (409),
a body over the limit (413), a content type the route does not take (415), a route that does not
exist (404) or a method it does not have (405), a bad page size or cursor (400).
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.api.http import MAX_BODY
from tests.functional.conftest import Stack

TEMPLATE = {"channel": "email", "name": "Welcome", "subject": "Hi {{ contact.first_name }}", "html": "<p>Hi</p>"}


def error_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.body)
    body = answer.json_body
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return dict(error)


def contacts(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.http("GET", "/contacts").json_body["contacts"])


def templates(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.http("GET", "/templates").json_body["templates"])


def test_a_body_that_is_not_json_is_400(stack: Stack) -> None:
    assert error_of(stack.http("POST", "/contacts", raw='{"email": "ada@example.com"'), 400)["code"] == "malformed_json"
    assert error_of(stack.http("POST", "/templates", raw="\xff\xfe"), 400)["code"] == "malformed_json"
    assert error_of(stack.http("POST", "/forms", raw=""), 400)["code"] == "empty_body"
    assert contacts(stack) == [] and templates(stack) == []


def test_a_body_that_is_not_an_object_is_422(stack: Stack) -> None:
    assert error_of(stack.http("POST", "/templates", [TEMPLATE]), 422)["code"] == "not_an_object"
    assert error_of(stack.http("POST", "/contacts", "ada@example.com"), 422)["code"] == "not_an_object"
    assert templates(stack) == []


def test_wrong_types_are_422_with_every_path(stack: Stack) -> None:
    error = error_of(stack.http("POST", "/contacts", {"email": 5, "tags": "vip"}), 422)
    assert {d["path"] for d in error["details"]} >= {"/email", "/tags"}
    error = error_of(stack.http("POST", "/templates", {**TEMPLATE, "subject": 7, "html": ["<p>"]}), 422)
    assert error["code"] == "invalid_template"
    assert {d["path"] for d in error["details"]} == {"/subject", "/html"}
    error = error_of(stack.http("POST", "/forms", {"key": 12, "owner_email": "not an address"}), 422)
    assert {d["path"] for d in error["details"]} == {"/key", "/owner_email"}
    assert contacts(stack) == [] and templates(stack) == []
    assert stack.http("GET", "/forms").json_body["forms"] == []


def test_unknown_fields_are_422(stack: Stack) -> None:
    for path, body in (
        ("/contacts", {"email": "ada@example.com", "favourite_colour": "red"}),
        ("/templates", {**TEMPLATE, "favourite_colour": "red"}),
        ("/forms", {"key": "newsletter", "favourite_colour": "red"}),
        ("/keys", {"name": "k", "role": "admin", "favourite_colour": "red"}),
    ):
        error = error_of(stack.http("POST", path, body), 422)
        assert {"path": "/favourite_colour", "code": "unknown_field"}.items() <= error["details"][-1].items(), path
    assert contacts(stack) == [] and templates(stack) == []
    assert stack.http("GET", "/forms").json_body["forms"] == []


def test_a_duplicate_email_on_create_is_409_and_keeps_the_first(stack: Stack) -> None:
    first = stack.http("POST", "/contacts", {"email": "ada@example.com", "first_name": "Ada"})
    assert first.status_code == 201, first.body
    error = error_of(stack.http("POST", "/contacts", {"email": "ADA@example.com", "first_name": "Eve"}), 409)
    assert error["code"] == "duplicate_contact"
    assert error["details"][0]["contact_id"] == first.json_body["contact_id"]
    assert [c["first_name"] for c in contacts(stack)] == ["Ada"]


def test_a_body_over_the_limit_is_413(stack: Stack) -> None:
    big = json.dumps({**TEMPLATE, "html": "<p>" + "x" * MAX_BODY + "</p>"})
    error = error_of(stack.http("POST", "/templates", raw=big), 413)
    assert error["code"] == "body_too_large"
    assert str(MAX_BODY) in error["message"]
    assert templates(stack) == []
    # Just under the limit is read (and here refused for its content, not its size).
    fits = json.dumps({**TEMPLATE, "html": "x" * (MAX_BODY - 200)})
    assert len(fits) <= MAX_BODY
    assert error_of(stack.http("POST", "/templates", raw=fits), 422)["code"] == "invalid_template"


def test_a_content_type_the_route_does_not_take_is_415(stack: Stack) -> None:
    raw = json.dumps({"email": "ada@example.com"})
    assert error_of(stack.http("POST", "/contacts", raw=raw, content_type="text/plain"), 415)["code"]
    assert error_of(stack.http("POST", "/templates", raw=json.dumps(TEMPLATE), content_type="application/xml"), 415)
    assert contacts(stack) == [] and templates(stack) == []


def test_an_unknown_route_is_404_and_a_missing_method_405(stack: Stack) -> None:
    assert error_of(stack.http("GET", "/no/such/route"), 404)["code"] == "not_found"
    assert error_of(stack.http("GET", "/no/such/route", key=None), 404)["code"] == "not_found"
    assert error_of(stack.http("DELETE", "/flows"), 405)["code"]


def test_a_bad_page_size_or_cursor_is_400(stack: Stack) -> None:
    for path in ("/templates", "/forms", "/flows", "/contacts"):
        assert error_of(stack.http("GET", f"{path}?limit=0"), 400)["code"] == "invalid_limit", path
        assert error_of(stack.http("GET", f"{path}?limit=many"), 400)["code"] == "invalid_limit", path
        assert error_of(stack.http("GET", f"{path}?cursor=not-ours"), 400)["code"] == "invalid_cursor", path
