"""Request parsing and the one mapping of errors to JSON answers, shared by every blueprint."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from chalice import Response
from chalice.app import Request

from chalicelib.access import allowed
from chalicelib.api.registry import find
from chalicelib.engine.errors import ApiError, BadRequest, Forbidden, PayloadTooLarge, Unprocessable
from chalicelib.logs import logger
from chalicelib.storage.paging import InvalidCursor, decode_cursor

# The largest request body a JSON operation accepts; imports declare their own, larger limit.
MAX_BODY = 256 * 1024


def error_response(status: int, code: str, message: str, details: list[Any] | None = None) -> Response:
    return Response(
        body={"error": {"code": code, "message": message, "details": details or []}},
        status_code=status,
        headers={"Content-Type": "application/json"},
    )


def errors_as_json(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: checks the caller's permission and the body size, then runs the route.

    Our errors become 4xx JSON; anything else is a 500 that we log as a bug.
    """
    try:
        admit(event)
        response = get_response(event)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    except Exception:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "something went wrong on our side")
    if (
        response.status_code in (400, 403, 404, 405, 415)
        and isinstance(response.body, dict)
        and "Code" in response.body
    ):
        # Chalice's own answers (unknown route, wrong method, bad content type) in our shape.
        code = str(response.body.get("Code"))
        return error_response(response.status_code, code, str(response.body.get("Message", code)))
    return response


def admit(request: Request) -> None:
    """Refuse, before the route runs, a caller whose role lacks the operation's permission."""
    context = request.context or {}
    op = find(str(context.get("httpMethod") or request.method), str(context.get("resourcePath") or ""))
    if op is None:
        return
    if op.permission is not None:
        role = (context.get("authorizer") or {}).get("role")
        if not allowed(role, op.permission):
            raise Forbidden("forbidden", f"the role {role!r} may not {op.summary[0].lower()}{op.summary[1:]}")
    limit = op.max_body or MAX_BODY
    raw = request.raw_body or b""
    if len(raw) > limit:
        raise PayloadTooLarge("body_too_large", f"the body is {len(raw)} bytes; this operation takes at most {limit}")


def json_body(request: Request) -> Any:
    raw = request.raw_body
    if not raw:
        raise BadRequest("empty_body", "the request needs a JSON body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("malformed_json", "the body nests too deeply") from None


def json_object(request: Request) -> dict[str, Any]:
    body = json_body(request)
    if not isinstance(body, dict):
        raise Unprocessable("not_an_object", "the body must be a JSON object")
    return body


def form_body(request: Request) -> dict[str, Any]:
    """A form post as a dict, from JSON or from `application/x-www-form-urlencoded`."""
    content_type = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        raw = request.raw_body or b""
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            return dict(parse_qsl(text, keep_blank_values=True))
        except UnicodeDecodeError:
            raise BadRequest("malformed_form", "the form body is not UTF-8") from None
    return json_object(request)


def query(request: Request) -> dict[str, str]:
    return dict(request.query_params or {})


def page_params(request: Request, *, default: int = 50, most: int = 200) -> tuple[str | None, int]:
    """The `cursor` and `limit` of a list request (limit 1..`most`)."""
    params = query(request)
    raw = params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise BadRequest("invalid_limit", f"`limit` is a whole number from 1 to {most}")
    cursor = params.get("cursor") or None
    try:
        decode_cursor(cursor)
    except InvalidCursor as exc:
        raise BadRequest("invalid_cursor", str(exc)) from None
    return cursor, int(raw)


def paged(items: list[Any], cursor: str | None, name: str = "items") -> dict[str, Any]:
    return {name: items, "next_cursor": cursor}
