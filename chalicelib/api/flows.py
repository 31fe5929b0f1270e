"""Marketer routes for flows: documents, lifecycle, versions, participants, enrollments."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.http import json_body, json_object
from chalicelib.bootstrap import runtime
from chalicelib.engine.errors import NotFound, Unprocessable

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


@bp.route("/schema/flow", methods=["GET"])
def flow_schema() -> dict[str, Any]:
    from chalicelib.flows.model import Flow

    return Flow.model_json_schema()


@bp.route("/flows", methods=["POST"])
def create_flow() -> Response:
    return Response(body=_lifecycle().create(json_body(bp.current_request)), status_code=201)


@bp.route("/flows", methods=["GET"])
def list_flows() -> dict[str, Any]:
    from chalicelib.engine.lifecycle import view

    return {"flows": [view(f) for f in runtime().flows.all()]}


@bp.route("/flows/{flow_id}", methods=["GET"])
def get_flow(flow_id: str) -> dict[str, Any]:
    from chalicelib.engine.lifecycle import view

    return view(_lifecycle().get(flow_id))


@bp.route("/flows/{flow_id}", methods=["PUT"])
def update_flow(flow_id: str) -> dict[str, Any]:
    return _lifecycle().update(flow_id, json_body(bp.current_request))


@bp.route("/flows/{flow_id}/{action}", methods=["POST"])
def flow_action(flow_id: str, action: str) -> Any:
    lifecycle = _lifecycle()
    if action == "enrollments":
        return enroll(flow_id)
    acts = {
        "activate": lifecycle.activate,
        "resume": lifecycle.activate,
        "pause": lifecycle.pause,
        "end": lifecycle.end,
    }
    if action not in acts:
        raise NotFound("unknown_action", f"flows have no action {action!r}; try one of {sorted(acts)}")
    return acts[action](flow_id)


@bp.route("/flows/{flow_id}/versions", methods=["GET"])
def versions(flow_id: str) -> dict[str, Any]:
    return {"versions": _lifecycle().versions(flow_id)}


@bp.route("/flows/{flow_id}/participants", methods=["GET"])
def participants(flow_id: str) -> dict[str, Any]:
    _lifecycle().get(flow_id)
    params = dict(bp.current_request.query_params or {})
    status = params.get("status")
    items = runtime().participants.of_flow(flow_id, status=status, limit=int(params.get("limit", "100") or 100))
    return {"participants": [participant_view(p) for p in items]}


@bp.route("/flows/{flow_id}/participants/{participant_id}", methods=["GET"])
def participant(flow_id: str, participant_id: str) -> dict[str, Any]:
    item = runtime().participants.get(flow_id, participant_id)
    if item is None:
        raise NotFound("participant_not_found", f"no participant {participant_id!r} in flow {flow_id!r}")
    return participant_view(item, trace=True)


def enroll(flow_id: str) -> Response:
    from chalicelib.engine.enroll import Enroller

    rt = runtime()
    _lifecycle().get(flow_id)
    body = json_object(bp.current_request)
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
