"""Marketer routes for contacts and their custom field definitions."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import json_object, page_params, paged, query
from chalicelib.api.registry import Param, operation
from chalicelib.bootstrap import runtime
from chalicelib.contacts.input import ContactIn, ContactPatch, FieldDefinitionIn
from chalicelib.engine.errors import BadRequest
from chalicelib.storage.models import ContactModel

bp = Blueprint(__name__)
TAG = "contacts"
CONFLICT = ((409, "another contact has this email address or external id"),)


def _service() -> Any:
    from chalicelib.engine.contacts import ContactService

    return ContactService(runtime())


@operation(
    bp, "POST", "/contacts", summary="Create a contact", permission="contacts.edit", tag=TAG, authorizer=api_key,
    request=ContactIn, response="Contact", status=201, errors=CONFLICT,
)  # fmt: skip
def create_contact() -> Response:
    return Response(body=_service().create(json_object(bp.current_request)), status_code=201)


@operation(
    bp, "PUT", "/contacts", summary="Create or update the contact with this external id or email",
    permission="contacts.edit", tag=TAG, authorizer=api_key, request=ContactIn, response="Contact",
    errors=((201, "created"), *CONFLICT),
)  # fmt: skip
def upsert_contact() -> Response:
    view, created = _service().upsert(json_object(bp.current_request))
    return Response(body=view, status_code=201 if created else 200)


@operation(
    bp, "GET", "/contacts", summary="List contacts", permission="contacts.view", tag=TAG, authorizer=api_key,
    response="ContactPage",
    query=(
        Param("cursor", "Where the previous page ended (`next_cursor`)."),
        Param("limit", "Contacts per page, 1-200.", {"type": "integer", "minimum": 1, "maximum": 200}),
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
    if "email" in params or "external_id" in params:
        found = (
            rt.contacts.find_by_email(params["email"])
            if "email" in params
            else rt.contacts.find_by_external_id(params["external_id"])
        )
        return paged([contact_view(found)] if found else [], None, "contacts")
    condition: Any = None
    for name, attr in (("tag", ContactModel.tags), ("list", ContactModel.lists)):
        if name in params:
            condition = attr.contains(params[name]) if condition is None else condition & attr.contains(params[name])
    if "category" in params:
        term = ContactModel.category == params["category"].casefold()
        condition = term if condition is None else condition & term
    unknown = set(params) - {"cursor", "limit", "email", "external_id", "tag", "list", "category"}
    if unknown:
        raise BadRequest("unknown_parameter", f"unknown query parameter(s): {sorted(unknown)}")
    page = rt.contacts.page(cursor=cursor, limit=limit, filter_condition=condition)
    return paged([contact_view(c) for c in page.items], page.cursor, "contacts")


@operation(
    bp, "GET", "/contacts/{contact_id}", summary="Read a contact", permission="contacts.view", tag=TAG,
    authorizer=api_key, response="Contact",
)  # fmt: skip
def get_contact(contact_id: str) -> dict[str, Any]:
    from chalicelib.engine.contacts import contact_view

    return contact_view(_service().get(contact_id))


@operation(
    bp, "PATCH", "/contacts/{contact_id}", summary="Change some fields of a contact", permission="contacts.edit",
    tag=TAG, authorizer=api_key, request=ContactPatch, response="Contact", errors=CONFLICT,
)  # fmt: skip
def patch_contact(contact_id: str) -> dict[str, Any]:
    return _service().patch(contact_id, json_object(bp.current_request))


@operation(
    bp, "POST", "/fields", summary="Define a custom contact field", permission="contacts.edit", tag=TAG,
    authorizer=api_key, request=FieldDefinitionIn, response="FieldDefinition", status=201,
    errors=((409, "a field with this name exists"),),
)  # fmt: skip
def define_field() -> Response:
    from chalicelib.engine.contacts import field_view

    item = _service().define_field(json_object(bp.current_request))
    return Response(body=field_view(item), status_code=201)


@operation(
    bp, "GET", "/fields", summary="List the custom contact fields", permission="contacts.view", tag=TAG,
    authorizer=api_key, response="FieldDefinitionList",
)  # fmt: skip
def list_fields() -> dict[str, Any]:
    from chalicelib.engine.contacts import field_view

    return {"fields": [field_view(f) for f in runtime().fields.all()]}
