"""Marketer routes for a contact's records: erasure, export, timeline, and CRM objects (activities, sales, requests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response
from pydantic import BaseModel

from chalicelib.access import Permission
from chalicelib.api import record_schemas as out
from chalicelib.api.authorizer import api_key
from chalicelib.api.http import json_object, page_params, paged, query
from chalicelib.api.registry import PAGE, Param, operation
from chalicelib.bootstrap import runtime
from chalicelib.contacts.crm import NEW, PATCH, CrmKind
from chalicelib.contacts.timeline_kinds import KINDS
from chalicelib.engine.errors import BadRequest

bp = Blueprint(__name__)
TAG = "contacts"


def _records() -> Any:
    from chalicelib.engine.records import ContactRecords

    return ContactRecords(runtime())


def _only(params: dict[str, str], allowed: set[str]) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise BadRequest("unknown_parameter", f"unknown query parameter(s): {sorted(unknown)}")


def _as(model: type[BaseModel], view: dict[str, Any]) -> dict[str, Any]:
    """The answer, checked against the model that documents it (a mismatch is our bug, not the caller's)."""
    model.model_validate(view)
    return view


# --- erasure, export, timeline ---------------------------------------------------------------------


@operation(
    bp, "DELETE", "/contacts/{contact_id}", summary="Erase a contact and everything keyed to it (GDPR)",
    permission="contacts.edit", tag=TAG, authorizer=api_key, response=out.Erasure,
    errors=((409, "the contact kept changing while it was being erased; try again"),),
)  # fmt: skip
def erase_contact(contact_id: str) -> dict[str, Any]:
    return _as(out.Erasure, _records().erase(contact_id))


@operation(
    bp, "GET", "/contacts/{contact_id}/export", summary="Export everything stored about a contact",
    permission="contacts.view", tag=TAG, authorizer=api_key, response=out.ContactExport,
)  # fmt: skip
def export_contact(contact_id: str) -> dict[str, Any]:
    return _as(out.ContactExport, _records().export(contact_id))


@operation(
    bp, "GET", "/contacts/{contact_id}/timeline", summary="Read what happened to a contact, newest first",
    permission="contacts.view", tag=TAG, authorizer=api_key, response=out.TimelinePage,
    query=(
        *PAGE,
        Param("kind", "Only items of these kinds (comma-separated).", {"type": "string", "pattern": r"^[a-z_,]+$"}),
    ),
)  # fmt: skip
def contact_timeline(contact_id: str) -> dict[str, Any]:
    from chalicelib.engine.records import timeline_view

    request = bp.current_request
    params = query(request)
    _only(params, {"cursor", "limit", "kind"})
    cursor, limit = page_params(request)
    kinds = None
    if "kind" in params:
        kinds = frozenset(k.strip() for k in params["kind"].split(",") if k.strip())
        if not kinds or not kinds <= set(KINDS):
            raise BadRequest("invalid_kind", f"`kind` takes one or more of {list(KINDS)}")
    page = _records().timeline(contact_id, cursor=cursor, limit=limit, kinds=kinds)
    return _as(out.TimelinePage, paged([timeline_view(t) for t in page.items], page.cursor, "timeline"))


# --- CRM objects: the same four routes for each kind -------------------------------------------------

_PLURAL: dict[CrmKind, str] = {"activity": "activities", "sale": "sales", "request": "requests"}
_VIEW: dict[CrmKind, type[BaseModel]] = {"activity": out.Activity, "sale": out.Sale, "request": out.ServiceRequest}
_PAGE: dict[CrmKind, type[BaseModel]] = {
    "activity": out.ActivityPage,
    "sale": out.SalePage,
    "request": out.ServiceRequestPage,
}


def _crm_routes(kind: CrmKind) -> None:
    plural, view, page_model = _PLURAL[kind], _VIEW[kind], _PAGE[kind]
    base = f"/contacts/{{contact_id}}/{plural}"
    one = f"{base}/{{object_id}}"
    changing = ((409, f"the {kind} kept changing while this request ran; try again"),)

    def create(contact_id: str) -> Response:
        made = _records().create(contact_id, kind, json_object(bp.current_request))
        return Response(body=_as(view, made), status_code=201)

    def listing(contact_id: str) -> dict[str, Any]:
        from chalicelib.engine.records import crm_view

        _only(query(bp.current_request), {"cursor", "limit"})
        cursor, limit = page_params(bp.current_request)
        page = _records().page(contact_id, kind, cursor=cursor, limit=limit)
        return _as(page_model, paged([crm_view(i) for i in page.items], page.cursor, plural))

    def read(contact_id: str, object_id: str) -> dict[str, Any]:
        from chalicelib.engine.records import crm_view

        return _as(view, crm_view(_records().get(contact_id, kind, object_id)))

    def change(contact_id: str, object_id: str) -> dict[str, Any]:
        return _as(view, _records().patch(contact_id, kind, object_id, json_object(bp.current_request)))

    routes: tuple[tuple[str, str, Callable[..., Any], str, Permission, dict[str, Any]], ...] = (
        ("POST", base, create, f"Add a {kind} to a contact", "contacts.edit",
         {"request": NEW[kind], "response": view, "status": 201}),
        ("GET", base, listing, f"List a contact's {plural}, newest first", "contacts.view",
         {"response": page_model, "query": PAGE}),
        ("GET", one, read, f"Read one {kind} of a contact", "contacts.view", {"response": view}),
        ("PATCH", one, change, f"Change some fields of a {kind}", "contacts.edit",
         {"request": PATCH[kind], "response": view, "errors": changing}),
    )  # fmt: skip
    for method, path, handler, summary, permission, details in routes:
        # Chalice names a route by its view function: one name per kind and action.
        handler.__name__ = handler.__qualname__ = f"{handler.__name__}_{kind}"
        operation(bp, method, path, summary=summary, permission=permission, tag=TAG, authorizer=api_key, **details)(
            handler
        )


for _kind in _PLURAL:
    _crm_routes(_kind)
