"""Marketer routes for message templates (flow content): reusable email and SMS texts.

An email template has a subject, an HTML body and an optional plain-text part; an SMS template has a
text. Every part is a Jinja template, checked when it is saved, so a typo is refused here rather than
found when a message is due. A template keeps its channel for life: a step that sends email must
never find an SMS text behind the id it was given.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from chalice import Blueprint, Response
from pydantic import ConfigDict, Field, RootModel, ValidationError

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import json_object, page_params, paged
from chalicelib.api.registry import PAGE, operation
from chalicelib.bootstrap import runtime
from chalicelib.engine.errors import Conflict, NotFound, Unprocessable
from chalicelib.schema import Model

if TYPE_CHECKING:
    from chalicelib.storage.models import TemplateModel

bp = Blueprint(__name__)
TAG = "content"
NOT_FOUND = ((404, "no template with this id"),)

_Name = Field(min_length=1, max_length=200, pattern=r"\S", description="What editors call it.")
_Subject = Field(min_length=1, max_length=998, description="Jinja template of the subject line.")
_Html = Field(min_length=1, max_length=200_000, description="Jinja template of the HTML body; links are tracked.")
_EmailText = Field(None, max_length=200_000, description="Jinja template of the plain-text part; derived if absent.")
_SmsText = Field(min_length=1, max_length=1600, description="Jinja template of the SMS text.")


class EmailTemplateIn(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    channel: Literal["email"]
    name: str = _Name
    subject: str = _Subject
    html: str = _Html
    text: str | None = _EmailText


class SmsTemplateIn(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    channel: Literal["sms"]
    name: str = _Name
    text: str = _SmsText


class TemplateRequest(RootModel[Annotated[EmailTemplateIn | SmsTemplateIn, Field(discriminator="channel")]]):
    """A template as written by an editor; `channel` says which parts it has."""


class EmailTemplate(Model):
    id: str
    channel: Literal["email"]
    name: str
    subject: str
    html: str
    text: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class SmsTemplate(Model):
    id: str
    channel: Literal["sms"]
    name: str
    text: str
    created_at: dt.datetime
    updated_at: dt.datetime


class Template(RootModel[Annotated[EmailTemplate | SmsTemplate, Field(discriminator="channel")]]):
    """A stored template."""


class TemplateList(Model):
    templates: list[Template]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def template_view(item: TemplateModel) -> dict[str, Any]:
    content = dict(item.content or {})
    parts = (
        {"subject": content["subject"], "html": content["html"], "text": content.get("text")}
        if item.channel == "email"
        else {"text": content["text"]}
    )
    return {
        "id": item.item_id,
        "channel": item.channel,
        "name": item.name,
        **parts,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def _checked(body: dict[str, Any]) -> EmailTemplateIn | SmsTemplateIn:
    """The template in the body, or every problem with it: shape first, then the Jinja syntax of each part."""
    try:
        parsed = TemplateRequest.model_validate(body).root
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            loc = list(e["loc"])
            # The union's tag leads the location; the client's path starts after it.
            if loc and loc[0] in ("email", "sms") and body.get("channel") == loc[0]:
                loc = loc[1:]
            if e["type"].startswith("union_tag"):
                loc = ["channel"]
            code = {"extra_forbidden": "unknown_field", "missing": "required"}.get(e["type"], "invalid")
            problems.append({"path": "/" + "/".join(str(x) for x in loc), "code": code, "message": e["msg"]})
        raise Unprocessable("invalid_template", f"the template has {len(problems)} problem(s)", problems) from None
    # Jinja2 loads only when a template is checked, not with the app.
    from chalicelib.channels.templates import check_template

    problems = [
        {"path": f"/{name}", "code": "template_syntax", "message": problem}
        for name, value in _content(parsed).items()
        if value is not None and (problem := check_template(value))
    ]
    if problems:
        raise Unprocessable("invalid_template", f"the template has {len(problems)} problem(s)", problems)
    return parsed


def _content(parsed: EmailTemplateIn | SmsTemplateIn) -> dict[str, Any]:
    if isinstance(parsed, EmailTemplateIn):
        return {"subject": parsed.subject, "html": parsed.html, "text": parsed.text}
    return {"text": parsed.text}


def _get(template_id: str) -> TemplateModel:
    item = runtime().templates.get(template_id)
    if item is None:
        raise NotFound("template_not_found", f"no template {template_id!r}")
    return item


@operation(
    bp, "POST", "/templates", summary="Create a message template", permission="content.edit", tag=TAG,
    authorizer=api_key, request=TemplateRequest, response=Template, status=201,
)  # fmt: skip
def create_template() -> Response:
    parsed = _checked(json_object(bp.current_request))
    item = runtime().templates.create(
        "tpl_" + uuid.uuid4().hex[:12], name=parsed.name.strip(), channel=parsed.channel, content=_content(parsed)
    )
    if item is None:  # pragma: no cover - 48 random bits colliding
        raise Conflict("template_exists", "a template with this id exists; try again")
    return Response(body=template_view(item), status_code=201)


@operation(
    bp, "GET", "/templates", summary="List message templates", permission="flows.view", tag=TAG,
    authorizer=api_key, response=TemplateList,
    query=PAGE,
)  # fmt: skip
def list_templates() -> dict[str, Any]:
    cursor, limit = page_params(bp.current_request)
    page = runtime().templates.page(cursor=cursor, limit=limit)
    return paged([template_view(t) for t in page.items], page.cursor, "templates")


@operation(
    bp, "GET", "/templates/{template_id}", summary="Read a message template", permission="flows.view", tag=TAG,
    authorizer=api_key, response=Template, errors=NOT_FOUND,
)  # fmt: skip
def get_template(template_id: str) -> dict[str, Any]:
    return template_view(_get(template_id))


@operation(
    bp, "PUT", "/templates/{template_id}", summary="Change a message template", permission="content.edit", tag=TAG,
    authorizer=api_key, request=TemplateRequest, response=Template,
    errors=(*NOT_FOUND, (409, "a template's channel cannot change")),
)  # fmt: skip
def update_template(template_id: str) -> dict[str, Any]:
    parsed = _checked(json_object(bp.current_request))
    item = _get(template_id)
    if parsed.channel != item.channel:
        raise Conflict(
            "channel_change", f"this is an {item.channel} template; its channel cannot change, create a new one"
        )
    saved = runtime().templates.replace(item, name=parsed.name.strip(), content=_content(parsed))
    return template_view(saved)


@operation(
    bp, "DELETE", "/templates/{template_id}", summary="Delete a message template", permission="content.delete",
    tag=TAG, authorizer=api_key, status=204, errors=NOT_FOUND,
)  # fmt: skip
def delete_template(template_id: str) -> Response:
    if not runtime().templates.delete(template_id):
        raise NotFound("template_not_found", f"no template {template_id!r}")
    return Response(body="", status_code=204)
