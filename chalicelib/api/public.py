"""Routes for websites and recipients: health, form submissions, tracking links, unsubscribe."""

from __future__ import annotations

import base64
import contextlib
import html
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.http import form_body, json_object
from chalicelib.bootstrap import runtime
from chalicelib.engine.errors import Conflict, NotFound, Unprocessable

bp = Blueprint(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
FORM_TYPES = ["application/json", "application/x-www-form-urlencoded"]


@bp.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@bp.route("/forms", methods=["POST"])
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


@bp.route("/forms", methods=["GET"])
def list_forms() -> dict[str, Any]:
    return {"forms": [{"key": f.form_key, "name": f.name} for f in runtime().forms.all()]}


@bp.route("/forms/{form_key}/submissions", methods=["POST"], content_types=FORM_TYPES)
def submit_form(form_key: str) -> Response:
    from chalicelib.engine.events import FormSubmissions

    result = FormSubmissions(runtime()).submit(form_key, form_body(bp.current_request))
    return Response(body=result, status_code=202)


@bp.route("/contacts/{contact_id}", methods=["GET"])
def get_contact(contact_id: str) -> dict[str, Any]:
    item = runtime().contacts.get_item(contact_id)
    if item is None:
        raise NotFound("contact_not_found", f"no contact {contact_id!r}")
    return {
        "contact_id": item.contact_id,
        "email": item.email,
        "phone": item.phone,
        "first_name": item.first_name,
        "last_name": item.last_name,
        "fields": item.fields,
        "tags": sorted(item.tags or ()),
        "unsubscribed": sorted(item.unsubscribed or ()),
        "forms_submitted": sorted(item.forms_submitted or ()),
    }


@bp.route("/t/o/{token}", methods=["GET"])
def open_pixel(token: str) -> Response:
    from chalicelib.engine.errors import ApiError
    from chalicelib.engine.events import Engagement

    # A mangled pixel URL still gets a pixel: mail clients show broken images otherwise.
    with contextlib.suppress(ApiError):
        Engagement(runtime()).track(token)
    return Response(body=PIXEL, status_code=200, headers={"Content-Type": "image/gif", "Cache-Control": "no-store"})


@bp.route("/t/c/{token}", methods=["GET"])
def click(token: str) -> Response:
    from chalicelib.engine.events import Engagement

    payload = Engagement(runtime()).track(token)
    url = payload.get("u")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise NotFound("no_target", "this link has no destination")
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@bp.route("/u/{token}", methods=["GET"])
def unsubscribe_page(token: str) -> Response:
    # GET never unsubscribes: link scanners follow every link in a message.
    page = (
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
        f'<form method=post action="/u/{html.escape(token)}"><p>Stop receiving these messages?</p>'
        "<button type=submit>Unsubscribe</button></form>"
    )
    return Response(body=page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


@bp.route("/u/{token}", methods=["POST"], content_types=[*FORM_TYPES, "multipart/form-data", "text/plain"])
def unsubscribe(token: str) -> dict[str, Any]:
    from chalicelib.engine.events import Engagement

    # RFC 8058 one-click: the mail client POSTs `List-Unsubscribe=One-Click`; the body does not matter.
    return Engagement(runtime()).unsubscribe(token)
