"""Routes for websites and recipients: health, form submissions, tracking links, unsubscribe."""

from __future__ import annotations

import base64
import contextlib
import html
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import form_body, json_object
from chalicelib.api.registry import operation
from chalicelib.bootstrap import runtime
from chalicelib.engine.errors import Conflict, NotFound, Unprocessable

bp = Blueprint(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
FORM_TYPES = ["application/json", "application/x-www-form-urlencoded"]


@operation(bp, "GET", "/health", summary="Say the API is up", permission=None, tag="public", response="Health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@operation(
    bp, "POST", "/forms", summary="Create a form", permission="content.edit", tag="content", authorizer=api_key,
    request="FormRequest", response="Form", status=201, errors=((409, "a form with this key exists"),),
)  # fmt: skip
def create_form() -> Response:
    body = json_object(bp.current_request)
    key, name = body.get("key"), body.get("name") or body.get("key")
    if not isinstance(key, str) or not key.replace("-", "").replace("_", "").isalnum() or len(key) > 64:
        raise Unprocessable("invalid_key", "`key` is 1-64 letters, digits, '-' or '_'")
    owner = body.get("owner_email")
    if owner is not None:
        from email_validator import EmailNotValidError, validate_email

        try:
            owner = validate_email(str(owner), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise Unprocessable("invalid_owner_email", f"`owner_email` is not a valid address: {exc}") from None
    item = runtime().forms.create(key, str(name), owner)
    if item is None:
        raise Conflict("form_exists", f"a form {key!r} exists already")
    return Response(
        body={
            "key": item.form_key,
            "name": item.name,
            "owner_email": item.owner_email,
            "submit_url": f"/forms/{key}/submissions",
        },
        status_code=201,
    )


@operation(
    bp, "GET", "/forms", summary="List forms", permission="flows.view", tag="content", authorizer=api_key,
    response="FormList",
)  # fmt: skip
def list_forms() -> dict[str, Any]:
    return {"forms": [{"key": f.form_key, "name": f.name} for f in runtime().forms.all()]}


@operation(
    bp, "POST", "/forms/{form_key}/submissions", summary="Submit a form (websites)", permission=None,
    tag="public", request="FormSubmission", response="SubmissionResult", status=202, content_types=tuple(FORM_TYPES),
)  # fmt: skip
def submit_form(form_key: str) -> Response:
    from chalicelib.engine.events import FormSubmissions

    result = FormSubmissions(runtime()).submit(form_key, form_body(bp.current_request))
    return Response(body=result, status_code=202)


@operation(
    bp, "GET", "/t/o/{token}", summary="Record an open (the tracking pixel)", permission=None, tag="public",
    media={"image/gif": "a transparent 1x1 GIF"},
)  # fmt: skip
def open_pixel(token: str) -> Response:
    from chalicelib.engine.errors import ApiError
    from chalicelib.engine.events import Engagement

    # A mangled pixel URL still gets a pixel: mail clients show broken images otherwise.
    with contextlib.suppress(ApiError):
        Engagement(runtime()).track(token)
    return Response(body=PIXEL, status_code=200, headers={"Content-Type": "image/gif", "Cache-Control": "no-store"})


@operation(
    bp, "GET", "/t/c/{token}", summary="Record a click and redirect to the link's target", permission=None,
    tag="public", status=302, errors=((400, "the link is not valid"),),
)  # fmt: skip
def click(token: str) -> Response:
    from chalicelib.engine.events import Engagement

    payload = Engagement(runtime()).track(token)
    url = payload.get("u")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise NotFound("no_target", "this link has no destination")
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@operation(
    bp, "GET", "/u/{token}", summary="Show the unsubscribe page", permission=None, tag="public",
    media={"text/html": "a page with an unsubscribe button"},
)  # fmt: skip
def unsubscribe_page(token: str) -> Response:
    # GET never unsubscribes: link scanners follow every link in a message.
    page = (
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
        f'<form method=post action="/u/{html.escape(token)}"><p>Stop receiving these messages?</p>'
        "<button type=submit>Unsubscribe</button></form>"
    )
    return Response(body=page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@operation(
    bp, "POST", "/u/{token}", summary="Unsubscribe (RFC 8058 one-click)", permission=None, tag="public",
    response="Unsubscribed", content_types=(*FORM_TYPES, "multipart/form-data", "text/plain"),
)  # fmt: skip
def unsubscribe(token: str) -> dict[str, Any]:
    from chalicelib.engine.events import Engagement

    # RFC 8058 one-click: the mail client POSTs `List-Unsubscribe=One-Click`; the body does not matter.
    return Engagement(runtime()).unsubscribe(token)
