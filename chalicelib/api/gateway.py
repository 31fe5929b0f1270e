"""API Gateway's own answers (no such route, no or a wrong key) in the error shape of every other answer.

In AWS, `infra/resources.json` declares these as gateway responses; the local stack and the tests
wrap Chalice's local gateway with the same table (`local.gateway`), so clients see one shape.
"""

from __future__ import annotations

import json

# gateway response type → (status, code, message)
GATEWAY_RESPONSES: dict[str, tuple[int, str, str]] = {
    "UNAUTHORIZED": (401, "unauthorized", "this route needs a valid API key: `Authorization: Bearer <key>`"),
    "ACCESS_DENIED": (403, "forbidden", "this API key may not do this"),
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", "there is no such route"),
    # An unknown route called with an Authorization header (we do not use IAM signatures).
    "INVALID_SIGNATURE": (404, "not_found", "there is no such route"),
    # API Gateway's 10 MB limit; the app refuses smaller bodies itself (413 body_too_large, see docs/api.md).
    "REQUEST_TOO_LARGE": (413, "body_too_large", "the body is larger than the API accepts"),
    # The stage's or the account's request rate (THROTTLED), or a usage plan's quota (QUOTA_EXCEEDED).
    "THROTTLED": (429, "throttled", "too many requests: wait a moment and send this request again"),
    "QUOTA_EXCEEDED": (429, "quota_exceeded", "this API's request quota is used up for now"),
    # The handler took longer than API Gateway waits (29 s); the request may still have been carried out.
    "INTEGRATION_TIMEOUT": (
        504,
        "timeout",
        "the request took too long; it may still have been carried out, so look before sending it again",
    ),
    "DEFAULT_4XX": (400, "bad_request", "the request was not accepted"),
    "DEFAULT_5XX": (500, "internal_error", "something went wrong on our side"),
}


# Headers API Gateway adds to some of its answers: a throttled client may try again after a second.
GATEWAY_HEADERS: dict[str, dict[str, str]] = {"THROTTLED": {"Retry-After": "1"}}


def body(response_type: str) -> str:
    _, code, message = GATEWAY_RESPONSES[response_type]
    return json.dumps({"error": {"code": code, "message": message, "details": []}})
