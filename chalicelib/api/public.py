"""Routes for websites and recipients: health, form submissions, tracking links, unsubscribe."""

from __future__ import annotations

import base64
import contextlib
import html
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import form_body, json_object, page_params, paged
from chalicelib.api.registry import PAGE, operation
from chalicelib.api.shared_schemas import FormChange, FormRequest
from chalicelib.bootstrap import runtime
from chalicelib.config import settings
from chalicelib.contacts.input import InputError, normalise_email, parse_model
from chalicelib.engine.errors import Conflict, Forbidden, NotFound

bp = Blueprint(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
FORM_TYPES = ["application/json", "application/x-www-form-urlencoded"]


@operation(bp, "GET", "/health", summary="Say the API is up", permission=None, tag="public", response="Health")
def health() -> dict[str, str]:
    return {"status": "ok"}


def form_view(item: Any) -> dict[str, Any]:
    return {
        "key": item.form_key,
        "name": item.name,
        "owner_email": item.owner_email,
        "submit_url": f"/forms/{item.form_key}/submissions",
    }


def _form_input(model: type[FormRequest] | type[FormChange], body: dict[str, Any]) -> Any:
    """The checked form body, with every problem at once; the owner's address normalised like a contact's."""
    problems = []
    try:
        parsed = parse_model(model, body)
    except InputError as exc:
        problems.extend(exc.problems)
    owner = body.get("owner_email")
    if isinstance(owner, str):
        try:
            owner = normalise_email(owner, "/owner_email")
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        from chalicelib.engine.contacts import invalid

        raise invalid(InputError(problems), "form")
    parsed.owner_email = owner
    return parsed


FORM_NOT_FOUND = ((404, "no form with this key"),)


@operation(
    bp, "POST", "/forms", summary="Create a form", permission="content.edit", tag="content", authorizer=api_key,
    request="FormRequest", response="Form", status=201, errors=((409, "a form with this key exists"),),
)  # fmt: skip
def create_form() -> Response:
    form = _form_input(FormRequest, json_object(bp.current_request))
    item = runtime().forms.create(form.key, form.name or form.key, form.owner_email)
    if item is None:
        raise Conflict("form_exists", f"a form {form.key!r} exists already")
    return Response(body=form_view(item), status_code=201)


@operation(
    bp, "GET", "/forms", summary="List forms", permission="flows.view", tag="content", authorizer=api_key,
    response="FormList",
    query=PAGE,
)  # fmt: skip
def list_forms() -> dict[str, Any]:
    cursor, limit = page_params(bp.current_request)
    page = runtime().forms.page(cursor=cursor, limit=limit)
    return paged([form_view(f) for f in page.items], page.cursor, "forms")


@operation(
    bp, "GET", "/forms/{form_key}", summary="Read a form", permission="flows.view", tag="content",
    authorizer=api_key, response="Form", errors=FORM_NOT_FOUND,
)  # fmt: skip
def get_form(form_key: str) -> dict[str, Any]:
    item = runtime().forms.get(form_key)
    if item is None:
        raise NotFound("form_not_found", f"no form {form_key!r}")
    return form_view(item)


@operation(
    bp, "PUT", "/forms/{form_key}", summary="Change a form's name and owner", permission="content.edit",
    tag="content", authorizer=api_key, request="FormChange", response="Form", errors=FORM_NOT_FOUND,
)  # fmt: skip
def update_form(form_key: str) -> dict[str, Any]:
    change = _form_input(FormChange, json_object(bp.current_request))
    item = runtime().forms.update(form_key, change.name, change.owner_email)
    if item is None:
        raise NotFound("form_not_found", f"no form {form_key!r}")
    return form_view(item)


@operation(
    bp, "DELETE", "/forms/{form_key}", summary="Delete a form", permission="content.delete", tag="content",
    authorizer=api_key, status=204, errors=(*FORM_NOT_FOUND, (409, "an active flow is triggered by this form")),
)  # fmt: skip
def delete_form(form_key: str) -> Response:
    rt = runtime()
    if rt.forms.get(form_key) is None:
        raise NotFound("form_not_found", f"no form {form_key!r}")
    # Deleting it would silently stop the flows it triggers; they must be paused or ended first.
    listening = [f.flow_id for f in rt.flows.listening(f"form_submitted#{form_key}")]
    if listening:
        raise Conflict(
            "form_in_use",
            f"active flows are triggered by form {form_key!r}; pause or end them first",
            [{"flow_id": flow_id} for flow_id in listening],
        )
    if not rt.forms.delete(form_key):
        raise NotFound("form_not_found", f"no form {form_key!r}")
    return Response(body="", status_code=204)


@operation(
    bp, "POST", "/forms/{form_key}/submissions", summary="Submit a form (websites)", permission=None,
    tag="public", request="FormSubmission", response="SubmissionResult", status=202, content_types=tuple(FORM_TYPES),
    errors=((403, "the page posting the form is not on the tenant's allowed origins"),),
)  # fmt: skip
def submit_form(form_key: str) -> Response:
    from chalicelib.engine.events import FormSubmissions

    _check_origin(bp.current_request.headers.get("origin"))
    result = FormSubmissions(runtime()).submit(form_key, form_body(bp.current_request))
    return Response(body=result, status_code=202)


def _check_origin(origin: str | None) -> None:
    """Forbidden when a browser posts from a page whose origin the tenant did not allow (FLOE_FORM_ORIGINS).

    Browsers send `Origin` with every cross-site POST, so a page of another site cannot post the form for
    its visitors. A server posting a form sends none and is let through, as is anyone when no list is set.
    """
    allowed = settings().form_origins
    if origin is None or not allowed or origin.strip().rstrip("/").lower() in allowed:
        return
    shown = origin[:200]
    raise Forbidden(
        "origin_not_allowed",
        f"forms of this site cannot be posted from {shown!r}",
        [{"path": "/headers/origin", "code": "origin_not_allowed", "message": f"{shown!r} is not an allowed origin"}],
    )


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
