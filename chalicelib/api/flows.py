"""Marketer routes for flows: documents, lifecycle, versions, participants, enrollments."""

from __future__ import annotations

from typing import Any, get_args

from chalice import Blueprint, Response

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import json_body, json_object, page_params, paged, query
from chalicelib.api.registry import PAGE, Param, operation
from chalicelib.api.shared_schemas import ParticipantStatus
from chalicelib.bootstrap import runtime
from chalicelib.engine.errors import BadRequest, NotFound, Unprocessable

bp = Blueprint(__name__)

MAX_ENROLLMENTS = 100


def _lifecycle() -> Any:
    from chalicelib.engine.lifecycle import FlowLifecycle

    return FlowLifecycle(runtime())


def participant_view(p: Any, *, trace: bool = False) -> dict[str, Any]:
    out = {
        "participant_id": p.participant_id,
        "contact_id": p.contact_id,
        "entry": int(p.entry),
        "version": int(p.version),
        "status": p.status,
        "reason": p.reason,
        "current_step": p.current_step,
        "entered_at": p.entered_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "last_message": p.last_message,
        "engagement": sorted(p.engagement or ()),
    }
    if trace:
        out["trace"] = list(p.trace or [])
        out["execution_arn"] = p.execution_arn
    return out


@operation(
    bp, "GET", "/schema/flow", summary="The JSON Schema of a flow document", permission=None, tag="flows",
    response="JsonSchema",
)  # fmt: skip
def flow_schema() -> dict[str, Any]:
    from chalicelib.flows.model import Flow

    return Flow.model_json_schema()


@operation(
    bp, "POST", "/flows", summary="Create a flow", permission="flows.edit", tag="flows", authorizer=api_key,
    request="FlowDocument", response="Flow", status=201,
)  # fmt: skip
def create_flow() -> Response:
    return Response(body=_lifecycle().create(json_body(bp.current_request)), status_code=201)


@operation(
    bp,
    "GET",
    "/flows",
    summary="List flows",
    permission="flows.view",
    tag="flows",
    authorizer=api_key,
    response="FlowList",
    query=PAGE,
)
def list_flows() -> dict[str, Any]:
    from chalicelib.engine.lifecycle import view

    cursor, limit = page_params(bp.current_request)
    page = runtime().flows.page(cursor=cursor, limit=limit)
    return paged([view(f) for f in page.items], page.cursor, "flows")


@operation(
    bp,
    "GET",
    "/flows/{flow_id}",
    summary="Read a flow",
    permission="flows.view",
    tag="flows",
    authorizer=api_key,
    response="Flow",
)
def get_flow(flow_id: str) -> dict[str, Any]:
    from chalicelib.engine.lifecycle import view

    return view(_lifecycle().get(flow_id))


@operation(
    bp, "PUT", "/flows/{flow_id}", summary="Save a flow's draft", permission="flows.edit", tag="flows",
    authorizer=api_key, request="FlowDocument", response="Flow", errors=((409, "the flow has ended"),),
)  # fmt: skip
def update_flow(flow_id: str) -> dict[str, Any]:
    return _lifecycle().update(flow_id, json_body(bp.current_request))


def _run(summary: str, action: str, conflict: str = "") -> Any:
    return operation(
        bp, "POST", f"/flows/{{flow_id}}/{action}", summary=summary, permission="flows.run", tag="flows",
        authorizer=api_key, response="Flow", errors=((409, conflict),) if conflict else (),
    )  # fmt: skip


ACTIVATE_CONFLICT = "the flow has ended, or its trigger's form does not exist"


@_run("Activate a flow: publish its draft as a new version", "activate", ACTIVATE_CONFLICT)
def activate(flow_id: str) -> Any:
    return _lifecycle().activate(flow_id)


@_run("Resume a paused flow (publishing its draft if it changed)", "resume", ACTIVATE_CONFLICT)
def resume(flow_id: str) -> Any:
    return _lifecycle().activate(flow_id)


@_run("Pause a flow: no new participants enter", "pause", "the flow is not active")
def pause(flow_id: str) -> Any:
    return _lifecycle().pause(flow_id)


@_run("End a flow: everyone in it leaves", "end")
def end(flow_id: str) -> Any:
    return _lifecycle().end(flow_id)


@operation(
    bp, "GET", "/flows/{flow_id}/versions", summary="List a flow's published versions", permission="flows.view",
    tag="flows", authorizer=api_key, response="VersionList",
)  # fmt: skip
def versions(flow_id: str) -> dict[str, Any]:
    return {"versions": _lifecycle().versions(flow_id)}


@operation(
    bp, "GET", "/flows/{flow_id}/participants", summary="List a flow's participants", permission="flows.view",
    tag="flows", authorizer=api_key, response="ParticipantList", errors=((404, "no flow with this id"),),
    query=(*PAGE, Param("status", "Only participants with this status.", {"enum": list(get_args(ParticipantStatus))})),
)  # fmt: skip
def participants(flow_id: str) -> dict[str, Any]:
    _lifecycle().get(flow_id)
    cursor, limit = page_params(bp.current_request)
    status = query(bp.current_request).get("status")
    if status is not None and status not in get_args(ParticipantStatus):
        raise BadRequest("invalid_status", f"`status` is one of {list(get_args(ParticipantStatus))}")
    page = runtime().participants.page_of_flow(flow_id, status=status, cursor=cursor, limit=limit)
    return paged([participant_view(p) for p in page.items], page.cursor, "participants")


@operation(
    bp, "GET", "/flows/{flow_id}/participants/{participant_id}", summary="Read a participant with its trace",
    permission="flows.view", tag="flows", authorizer=api_key, response="Participant",
)  # fmt: skip
def participant(flow_id: str, participant_id: str) -> dict[str, Any]:
    item = runtime().participants.get(flow_id, participant_id)
    if item is None:
        raise NotFound("participant_not_found", f"no participant {participant_id!r} in flow {flow_id!r}")
    return participant_view(item, trace=True)


@operation(
    bp, "POST", "/flows/{flow_id}/enrollments", summary="Enroll contacts into a flow", permission="flows.run",
    tag="flows", authorizer=api_key, request="EnrollmentRequest", response="EnrollmentResults",
)  # fmt: skip
def enroll(flow_id: str) -> Response:
    from chalicelib.engine.enroll import Enroller

    rt = runtime()
    _lifecycle().get(flow_id)
    body = json_object(bp.current_request)
    if unknown := sorted(set(body) - {"contact_ids", "emails"}):
        problems = [{"path": f"/{k}", "code": "unknown_field", "message": "not an enrollment field"} for k in unknown]
        raise Unprocessable("unknown_field", "the enrollment request has unknown fields", problems)
    contact_ids = body.get("contact_ids", [])
    emails = body.get("emails", [])
    if not isinstance(contact_ids, list) or not isinstance(emails, list) or not (contact_ids or emails):
        raise Unprocessable("no_contacts", "give `contact_ids` and/or `emails` as non-empty lists")
    if len(contact_ids) + len(emails) > MAX_ENROLLMENTS:
        raise Unprocessable("too_many", f"at most {MAX_ENROLLMENTS} contacts per request")
    enroller = Enroller(rt)
    results = []
    for email in emails:
        found = rt.contacts.find_by_email(str(email))
        if found is None:
            results.append({"email": email, "outcome": "contact_not_found", "participant_id": None, "detail": ""})
        else:
            results.append({"email": email, **enroller.enroll(flow_id, found.contact_id, source="manual").as_dict()})
    for contact_id in contact_ids:
        results.append(
            {"contact_id": contact_id, **enroller.enroll(flow_id, str(contact_id), source="manual").as_dict()}
        )
    return Response(body={"results": results}, status_code=200)
