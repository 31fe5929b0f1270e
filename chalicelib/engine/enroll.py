"""Enrollment: a contact proposed by a trigger or by hand becomes a participant and an execution.

The decision order is what a marketer reads in the answer: flow not running → unknown contact →
already in the flow → re-entry rule → entry filter → enrolled. The participant item is written with a
condition first and the execution started second, both keyed by the entry number, so a repeated
trigger or a redelivered message is absorbed: the participant exists and the execution name is taken.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib import metrics
from chalicelib.contacts.conditions import explain
from chalicelib.contacts.model import Facts
from chalicelib.engine.ports import Runtime
from chalicelib.flows.compiler import execution_input
from chalicelib.flows.model import Flow
from chalicelib.storage.models import ParticipantModel
from chalicelib.storage.repos import TERMINAL, to_contact

Outcome = Literal[
    "enrolled", "already_enrolled", "reentry_blocked", "filtered_out", "flow_not_active", "contact_not_found"
]


@dataclass(frozen=True)
class Enrollment:
    outcome: Outcome
    participant_id: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "participant_id": self.participant_id, "detail": self.detail}


def participant_id(contact_id: str, entry: int) -> str:
    return f"{contact_id}.{entry}"


def execution_name(flow_id: str, version: int, contact_id: str, entry: int) -> str:
    # Deterministic, at most 80 characters of [A-Za-z0-9_-]: ids are short by construction.
    return f"{flow_id}-v{version}-{contact_id}-e{entry}"[:80]


class Enroller:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def enroll(self, flow_id: str, contact_id: str, *, source: str) -> Enrollment:
        result = self._decide(flow_id, contact_id, source=source)
        metrics.enrollment(result.outcome)
        return result

    def _decide(self, flow_id: str, contact_id: str, *, source: str) -> Enrollment:
        rt = self._rt
        item = rt.flows.get(flow_id)
        if item is None or item.status != "active" or not item.current_version:
            return Enrollment("flow_not_active", detail=f"the flow is {item.status if item else 'missing'}")
        version = int(item.current_version)
        published = rt.flows.version(flow_id, version)
        assert published is not None, "an active flow always has its current version"
        flow = Flow.model_validate(published.document)
        contact_item = rt.contacts.get_item(contact_id)
        if contact_item is None:
            return Enrollment("contact_not_found")

        entries = sorted(rt.participants.entries(flow_id, contact_id), key=lambda p: int(p.entry))
        open_entries = [p for p in entries if p.status not in TERMINAL]
        if open_entries:
            current = open_entries[-1]
            if current.status == "starting":
                # A previous attempt stopped between writing the participant and starting it.
                self._start(current, flow, published.state_machine_arn)
            return Enrollment("already_enrolled", current.participant_id, "the contact is in this flow now")
        now = rt.clock()
        if entries:
            blocked = self._reentry_blocked(flow, entries[-1], now)
            if blocked:
                return Enrollment("reentry_blocked", entries[-1].participant_id, blocked)
        if flow.filter is not None:
            facts = Facts(to_contact(contact_item), forms_submitted=frozenset(contact_item.forms_submitted or ()))
            ok, why = explain(flow.filter, facts)
            if not ok:
                return Enrollment("filtered_out", detail=why)

        entry = int(entries[-1].entry) + 1 if entries else 1
        pid = participant_id(contact_id, entry)
        participant = ParticipantModel(
            flow_id=flow_id,
            participant_id=pid,
            contact_id=contact_id,
            entry=entry,
            version=version,
            execution_name=execution_name(flow_id, version, contact_id, entry),
            status="starting",
            current_step=flow.start_at,
            entered_at=now,
            updated_at=now,
            trace=[{"at": now.isoformat(), "step": None, "event": "entered", "detail": f"{source}, version {version}"}],
        )
        if not rt.participants.create(participant):
            return Enrollment("already_enrolled", pid, "a simultaneous trigger enrolled the contact")
        self._start(participant, flow, published.state_machine_arn)
        return Enrollment("enrolled", pid)

    def _reentry_blocked(self, flow: Flow, last: ParticipantModel, now: dt.datetime) -> str:
        rule = flow.reentry
        if rule.mode == "never":
            return "the flow lets each contact in once"
        if rule.mode == "after" and rule.after is not None:
            seconds = rule.after.total_seconds * self._rt.settings.time_scale
            again = last.entered_at + dt.timedelta(seconds=seconds)
            if now < again:
                return f"the contact may enter again from {again.isoformat()}"
        return ""

    def _start(self, participant: ParticipantModel, flow: Flow, state_machine_arn: str) -> None:
        payload = execution_input(
            flow,
            start_at=flow.start_at,
            ids={
                "flow_id": participant.flow_id,
                "version": int(participant.version),
                "contact_id": participant.contact_id,
                "participant_id": participant.participant_id,
            },
            time_scale=self._rt.settings.time_scale,
        )
        arn = self._rt.machines.start(state_machine_arn, participant.execution_name, payload)
        self._rt.participants.started(participant, arn)
