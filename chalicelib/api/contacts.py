"""Marketer routes for contacts and their custom field definitions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chalice import Blueprint, Response
from pydantic import ConfigDict, Field

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import json_object, page_params, paged, query
from chalicelib.api.registry import PAGE, Param, operation
from chalicelib.bootstrap import runtime
from chalicelib.contacts.input import (
    ConsentStatus,
    ContactIn,
    ContactPatch,
    FieldDefinitionIn,
    FieldType,
    InputError,
    normalise_email,
)
from chalicelib.engine.errors import BadRequest
from chalicelib.schema import Model
from chalicelib.storage.paging import InvalidCursor

bp = Blueprint(__name__)
TAG = "contacts"
CONFLICT = ((409, "another contact has this email address or external id"),)


# --- what the routes answer (the shape of `engine.contacts.contact_view` and `field_view`) ----------------


class _Out(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")


class ConsentRecord(_Out):
    status: ConsentStatus
    source: str
    at: dt.datetime = Field(description="When it was given or withdrawn (UTC).")


class ContactConsent(_Out):
    email: ConsentRecord | None
    sms: ConsentRecord | None


class Contact(_Out):
    """A contact as stored: standard fields are null when unknown."""

    contact_id: str
    email: str | None
    external_id: str | None
    phone: str | None = Field(description="E.164, e.g. +31612345678.")
    first_name: str | None
    last_name: str | None
    company: str | None
    language: str | None = Field(description="BCP 47 tag, lower-case.")
    timezone: str | None = Field(description="IANA time zone.")
    category: str | None = Field(description="Lifecycle stage, lower-case.")
    owner_email: str | None
    fields: dict[str, str | float | bool]
    tags: list[str]
    lists: list[str]
    consent: ContactConsent
    unsubscribed: list[str] = Field(description="Channels the contact may not be sent to: `email`, `sms`.")
    forms_submitted: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


class ContactPage(_Out):
    contacts: list[Contact]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class FieldDefinition(_Out):
    name: str
    type: FieldType
    label: str | None
    options: list[str]
    created_at: dt.datetime


class FieldDefinitionList(_Out):
    fields: list[FieldDefinition]


def _service() -> Any:
    from chalicelib.engine.contacts import ContactService

    return ContactService(runtime())


@operation(
    bp, "POST", "/contacts", summary="Create a contact", permission="contacts.edit", tag=TAG, authorizer=api_key,
    request=ContactIn, response=Contact, status=201, errors=CONFLICT,
)  # fmt: skip
def create_contact() -> Response:
    return Response(body=_service().create(json_object(bp.current_request)), status_code=201)


@operation(
    bp, "PUT", "/contacts", summary="Create or update the contact with this external id or email",
    permission="contacts.edit", tag=TAG, authorizer=api_key, request=ContactIn, response=Contact,
    errors=((201, "created"), *CONFLICT),
)  # fmt: skip
def upsert_contact() -> Response:
    view, created = _service().upsert(json_object(bp.current_request))
    return Response(body=view, status_code=201 if created else 200)


@operation(
    bp, "GET", "/contacts", summary="List contacts", permission="contacts.view", tag=TAG, authorizer=api_key,
    response=ContactPage,
    query=(
        *PAGE,
        Param("email", "Only the contact with this address."),
        Param("external_id", "Only the contact with this external id."),
        Param("tag", "Only contacts with this tag."),
        Param("list", "Only contacts on this list."),
        Param("category", "Only contacts in this category (lifecycle stage)."),
    ),
)  # fmt: skip
def list_contacts() -> dict[str, Any]:
    from chalicelib.engine.contacts import contact_view

    rt = runtime()
    cursor, limit = page_params(bp.current_request)
    params = query(bp.current_request)
    unknown = set(params) - {"cursor", "limit", "email", "external_id", "tag", "list", "category"}
    if unknown:
        raise BadRequest("unknown_parameter", f"unknown query parameter(s): {sorted(unknown)}")
    if "email" in params or "external_id" in params:
        found = _find(rt, params)
        return paged([contact_view(found)] if found else [], None, "contacts")
    filters: dict[str, str] = {name: params[name] for name in ("tag", "list", "category") if name in params}
    try:
        if filters:
            from chalicelib.engine.segments import contacts_where

            # Served by the segment index (docs/segments.md): a page reads what it returns, not the table.
            page = contacts_where(rt, filters, cursor=cursor, limit=limit)
        else:
            page = rt.contacts.page(cursor=cursor, limit=limit)
    except InvalidCursor as exc:
        raise BadRequest("invalid_cursor", str(exc)) from None
    return paged([contact_view(c) for c in page.items], page.cursor, "contacts")


def _find(rt: Any, params: dict[str, str]) -> Any:
    """The one contact with this address or external id (and every other filter given), or None."""
    if "email" in params:
        try:
            email = normalise_email(params["email"])
        except InputError:
            return None  # no contact can have an address we would not store
        found = rt.contacts.find_by_email(email)
        if found is not None and "external_id" in params and found.external_id != params["external_id"]:
            return None
    else:
        found = rt.contacts.find_by_external_id(params["external_id"])
    if found is None:
        return None
    if "tag" in params and params["tag"] not in (found.tags or ()):
        return None
    if "list" in params and params["list"] not in (found.lists or ()):
        return None
    if "category" in params and (found.category or "") != params["category"].casefold():
        return None
    return found


@operation(
    bp, "GET", "/contacts/{contact_id}", summary="Read a contact", permission="contacts.view", tag=TAG,
    authorizer=api_key, response=Contact,
)  # fmt: skip
def get_contact(contact_id: str) -> dict[str, Any]:
    from chalicelib.engine.contacts import contact_view

    return contact_view(_service().get(contact_id))


@operation(
    bp, "PATCH", "/contacts/{contact_id}", summary="Change some fields of a contact", permission="contacts.edit",
    tag=TAG, authorizer=api_key, request=ContactPatch, response=Contact, errors=CONFLICT,
)  # fmt: skip
def patch_contact(contact_id: str) -> dict[str, Any]:
    return _service().patch(contact_id, json_object(bp.current_request))


@operation(
    bp, "POST", "/fields", summary="Define a custom contact field", permission="contacts.edit", tag=TAG,
    authorizer=api_key, request=FieldDefinitionIn, response=FieldDefinition, status=201,
    errors=((409, "a field with this name exists"),),
)  # fmt: skip
def define_field() -> Response:
    from chalicelib.engine.contacts import field_view

    item = _service().define_field(json_object(bp.current_request))
    return Response(body=field_view(item), status_code=201)


@operation(
    bp, "GET", "/fields", summary="List the custom contact fields", permission="contacts.view", tag=TAG,
    authorizer=api_key, response=FieldDefinitionList,
)  # fmt: skip
def list_fields() -> dict[str, Any]:
    from chalicelib.engine.contacts import field_view

    return {"fields": [field_view(f) for f in runtime().fields.all()]}
