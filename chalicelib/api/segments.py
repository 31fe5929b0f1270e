"""Marketer routes for saved segments: CRUD, members and counts.

A segment is a name and a condition in the language of flow filters and branches; its members are the
contacts the condition accepts now. Which conditions an index serves and which need a scan is in
docs/segments.md; every answer says which one it was (`served_by`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from chalice import Blueprint, Response
from pydantic import Field

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import json_object, page_params, paged
from chalicelib.api.registry import PAGE, operation
from chalicelib.bootstrap import runtime
from chalicelib.contacts.segments import SegmentDefinition
from chalicelib.schema import Model

bp = Blueprint(__name__)
TAG = "segments"
NOT_FOUND = ((404, "no segment with this id"),)
INVALID = ((422, "the name or the condition is not valid; `details` lists every problem with its path"),)
ServedBy = Literal["index", "scan"]


class Segment(Model):
    segment_id: str = Field(description="`sg_` and 16 hex digits.")
    name: str
    condition: dict[str, Any] = Field(description="The condition as stored (defaults filled in).")
    served_by: ServedBy = Field(description="`index` when the segment index finds the candidates; `scan` otherwise.")
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentList(Model):
    segments: list[Segment]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class SegmentCount(Model):
    segment_id: str
    count: int = Field(ge=0, description="Contacts in the segment.")
    served_by: ServedBy
    index_entries: list[str] = Field(description="The index partitions read (none for a scan).")
    contacts_evaluated: int = Field(
        ge=0, description="Contacts read to evaluate the condition; 0 when the index alone answered."
    )
    counted_at: dt.datetime


def _service() -> Any:
    from chalicelib.engine.segments import SegmentService

    return SegmentService(runtime())


def _view(item: Any) -> dict[str, Any]:
    from chalicelib.engine.segments import segment_view

    return segment_view(item)


@operation(
    bp, "POST", "/segments", summary="Save a segment", permission="contacts.edit", tag=TAG, authorizer=api_key,
    request=SegmentDefinition, response=Segment, status=201, errors=INVALID,
)  # fmt: skip
def create_segment() -> Response:
    return Response(body=_view(_service().create(json_object(bp.current_request))), status_code=201)


@operation(
    bp, "GET", "/segments", summary="List segments", permission="contacts.view", tag=TAG, authorizer=api_key,
    response=SegmentList, query=PAGE,
)  # fmt: skip
def list_segments() -> dict[str, Any]:
    cursor, limit = page_params(bp.current_request)
    page = _service().page(cursor=cursor, limit=limit)
    return paged([_view(s) for s in page.items], page.cursor, "segments")


@operation(
    bp, "GET", "/segments/{segment_id}", summary="Read a segment", permission="contacts.view", tag=TAG,
    authorizer=api_key, response=Segment, errors=NOT_FOUND,
)  # fmt: skip
def get_segment(segment_id: str) -> dict[str, Any]:
    return _view(_service().get(segment_id))


@operation(
    bp, "PUT", "/segments/{segment_id}", summary="Change a segment's name and condition", permission="contacts.edit",
    tag=TAG, authorizer=api_key, request=SegmentDefinition, response=Segment, errors=(*NOT_FOUND, *INVALID),
)  # fmt: skip
def replace_segment(segment_id: str) -> dict[str, Any]:
    return _view(_service().replace(segment_id, json_object(bp.current_request)))


@operation(
    bp, "DELETE", "/segments/{segment_id}", summary="Delete a segment", permission="contacts.edit", tag=TAG,
    authorizer=api_key, status=204, errors=NOT_FOUND,
)  # fmt: skip
def delete_segment(segment_id: str) -> Response:
    _service().delete(segment_id)
    return Response(body="", status_code=204)


@operation(
    bp, "GET", "/segments/{segment_id}/contacts", summary="Page through a segment's contacts",
    permission="contacts.view", tag=TAG, authorizer=api_key, response="ContactPage", query=PAGE, errors=NOT_FOUND,
)  # fmt: skip
def segment_contacts(segment_id: str) -> dict[str, Any]:
    from chalicelib.engine.contacts import contact_view

    cursor, limit = page_params(bp.current_request)
    page = _service().members(segment_id, cursor=cursor, limit=limit)
    return paged([contact_view(c) for c in page.items], page.cursor, "contacts")


@operation(
    bp, "GET", "/segments/{segment_id}/count", summary="Count a segment's contacts", permission="contacts.view",
    tag=TAG, authorizer=api_key, response=SegmentCount, errors=NOT_FOUND,
)  # fmt: skip
def count_segment(segment_id: str) -> dict[str, Any]:
    return dict(_service().count(segment_id))
