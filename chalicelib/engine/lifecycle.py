"""The flow lifecycle: draft, activate (publish a version), pause, resume, end.

A flow keeps an editable draft. Activating publishes the draft as a new immutable version (its own
state machine) when it differs from the live one; participants stay on the version they entered
with, so an edit never disturbs anyone already in the flow. Pausing stops new entries; people in the
flow carry on. Ending stops every execution and marks its participant `exited: flow_ended`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.channels.templates import check_template
from chalicelib.engine.errors import Conflict, NotFound, Unprocessable
from chalicelib.engine.ports import Runtime
from chalicelib.flows.compiler import compile_flow
from chalicelib.flows.model import Flow, FormSubmittedTrigger, Notify, SendEmail, SendSms, trigger_key
from chalicelib.flows.validation import Result, Violation, validate
from chalicelib.storage.models import FlowModel
from chalicelib.storage.repos import TERMINAL


def checked(doc: Any) -> tuple[Flow, Result]:
    result = validate(doc)
    if result.flow is not None:
        broken = tuple(template_violations(result.flow))
        if broken:
            result = Result(None, result.violations + broken)
    if not result.ok or result.flow is None:
        raise Unprocessable(
            "invalid_flow",
            f"the flow document has {len(result.errors)} error(s)",
            [v.as_dict() for v in result.violations],
        )
    return result.flow, result


def template_violations(flow: Flow) -> Iterator[Violation]:
    """Templates that cannot be parsed: caught when the flow is saved, not when a message is due."""
    for i, step in enumerate(flow.steps):
        texts: dict[str, str | None] = {}
        if isinstance(step, SendEmail):
            texts = {"subject": step.subject, "html": step.html, "text": step.text}
        elif isinstance(step, SendSms):
            texts = {"text": step.text}
        elif isinstance(step, Notify):
            texts = {"subject": step.subject, "text": step.text}
        for name, template in texts.items():
            problem = check_template(template) if template else None
            if problem:
                yield Violation(f"/steps/{i}/{name}", "template_syntax", problem)


def view(item: FlowModel, result: Result | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.flow_id,
        "name": item.name,
        "status": item.status,
        "version": item.current_version or None,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
        "document": item.draft,
    }
    if result is not None:
        out["warnings"] = [v.as_dict() for v in result.warnings]
    return out


class FlowLifecycle:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def get(self, flow_id: str) -> FlowModel:
        item = self._rt.flows.get(flow_id)
        if item is None:
            raise NotFound("flow_not_found", f"no flow {flow_id!r}")
        return item

    def create(self, doc: Any) -> dict[str, Any]:
        flow, result = checked(doc)
        item = self._rt.flows.create(flow.name, doc)
        return view(item, result)

    def update(self, flow_id: str, doc: Any) -> dict[str, Any]:
        item = self.get(flow_id)
        if item.status == "ended":
            raise Conflict("flow_ended", "an ended flow cannot be edited; copy it instead")
        flow, result = checked(doc)
        self._rt.flows.save_draft(item, flow.name, doc)
        return view(self.get(flow_id), result)

    def activate(self, flow_id: str) -> dict[str, Any]:
        """Publish the draft if it changed, then listen for the trigger. Resuming is the same act."""
        item = self.get(flow_id)
        if item.status == "ended":
            raise Conflict("flow_ended", "an ended flow cannot be activated; copy it instead")
        flow, result = checked(item.draft)
        if isinstance(flow.trigger, FormSubmittedTrigger) and self._rt.forms.get(flow.trigger.form) is None:
            raise Conflict(
                "form_not_found", f"the trigger's form {flow.trigger.form!r} does not exist; create it first"
            )
        version = int(item.current_version or 0)
        live = self._rt.flows.version(flow_id, version) if version else None
        if live is None or live.document != item.draft:
            version += 1
            definition = compile_flow(flow, queue_url=self._rt.settings.steps_queue_url)
            arn = self._rt.machines.publish(flow_id, version, definition)
            self._rt.flows.add_version(flow_id, version, item.draft, arn)
        self._rt.flows.set_status(item, "active", trigger_key=trigger_key(flow.trigger), version=version)
        return view(self.get(flow_id), result)

    def pause(self, flow_id: str) -> dict[str, Any]:
        item = self.get(flow_id)
        if item.status != "active":
            raise Conflict("not_active", f"only an active flow can be paused; this one is {item.status}")
        self._rt.flows.set_status(item, "paused", trigger_key=None)
        return view(self.get(flow_id))

    def end(self, flow_id: str) -> dict[str, Any]:
        item = self.get(flow_id)
        if item.status == "ended":
            return view(item)
        self._rt.flows.set_status(item, "ended", trigger_key=None)
        stopped = 0
        for participant in self._rt.participants.of_flow(flow_id, limit=100_000):
            if participant.status in TERMINAL:
                continue
            if participant.execution_arn:
                self._rt.machines.stop(participant.execution_arn, cause="the flow was ended")
            self._rt.participants.record(
                flow_id,
                participant.participant_id,
                trace=[
                    {
                        "at": self._rt.clock().isoformat(),
                        "step": participant.current_step,
                        "event": "exited",
                        "detail": "the flow was ended",
                    }
                ],
                status="exited",
                reason="flow_ended",
                # One that finished meanwhile keeps its own ending.
                only_if_open=True,
            )
            stopped += 1
        out = view(self.get(flow_id))
        out["participants_stopped"] = stopped
        return out

    def versions(self, flow_id: str) -> list[dict[str, Any]]:
        self.get(flow_id)
        return [
            {
                "version": int(v.version),
                "published_at": v.published_at.isoformat(),
                "state_machine_arn": v.state_machine_arn,
                "document": v.document,
            }
            for v in self._rt.flows.versions(flow_id)
        ]
