"""Form posts from browser pages the tenant did not allow are refused (403) and leave nothing behind.

The tenant file's `[forms] allowed_origins` reaches the app as FLOE_FORM_ORIGINS. A browser always sends `Origin`
with a cross-site POST; a server posting a form sends none and is let through, as is any page when no list is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.storage.models import ContactModel
from tests.functional.conftest import Stack

ALLOWED = "https://www.shop.test,https://shop.test"


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The stack of a tenant that allows forms from its two sites only (set before the app reads its settings)."""
    monkeypatch.setenv("FLOE_FORM_ORIGINS", ALLOWED)
    stack: Stack = request.getfixturevalue("stack")
    created = stack.http("POST", "/forms", {"key": "newsletter", "name": "Newsletter"})
    assert created.status_code == 201, created.body
    yield stack


def post(stack: Stack, origin: str | None, email: str = "ann@example.com", *, urlencoded: bool = False) -> Any:
    headers = {"Origin": origin} if origin is not None else {}
    path = "/forms/newsletter/submissions"
    if urlencoded:
        raw = f"email={email.replace('@', '%40')}&first_name=Ann"
        form = "application/x-www-form-urlencoded"
        return stack.http("POST", path, raw=raw, content_type=form, headers=headers, key=None)
    return stack.http("POST", path, {"email": email, "first_name": "Ann"}, headers=headers, key=None)


def stored() -> int:
    return sum(1 for _ in ContactModel.scan())


def test_a_post_from_a_page_not_allowed_is_refused_and_changes_nothing(guarded: Stack) -> None:
    for origin in ("https://evil.test", "https://shop.test.evil.test", "http://shop.test", "null"):
        for urlencoded in (False, True):
            answer = post(guarded, origin, urlencoded=urlencoded)
            assert answer.status_code == 403, (origin, answer.body)
            assert answer.headers["Content-Type"].startswith("application/json")
            error = answer.json_body["error"]
            assert error["code"] == "origin_not_allowed" and origin in error["message"]
            assert error["details"] == [
                {
                    "path": "/headers/origin",
                    "code": "origin_not_allowed",
                    "message": f"{origin!r} is not an allowed origin",
                }
            ]
    assert stored() == 0
    assert guarded.pump() == 0  # nothing queued for enrollment either


def test_a_post_from_an_allowed_page_or_a_server_is_accepted(guarded: Stack) -> None:
    # Browsers send the origin lower-case; a trailing slash or capitals still name the same site.
    for n, origin in enumerate(("https://www.shop.test", "https://SHOP.test", "https://shop.test/", None)):
        answer = post(guarded, origin, f"ann{n}@example.com", urlencoded=n % 2 == 1)
        assert answer.status_code == 202, (origin, answer.body)
        assert answer.json_body["created"] is True
    assert stored() == 4


def test_without_a_list_any_page_may_post(stack: Stack) -> None:
    created = stack.http("POST", "/forms", {"key": "newsletter", "name": "Newsletter"})
    assert created.status_code == 201, created.body
    answer = post(stack, "https://anywhere.test", urlencoded=True)
    assert answer.status_code == 202, answer.body
    assert stored() == 1


def test_the_refusal_is_in_the_api_description(stack: Stack) -> None:
    document = stack.http("GET", "/openapi.json", key=None).json_body
    responses = document["paths"]["/forms/{form_key}/submissions"]["post"]["responses"]
    assert "403" in responses
