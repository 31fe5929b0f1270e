"""A contact's timeline, written from stored changes: flows entered and left, messages, engagement,
form submissions, field changes, CRM objects.

Nothing else writes the timeline: routes and steps change contacts, participants and CRM objects,
and the change worker calls `timeline_change` once per stream record. What an item says is read from
the old and new images of that record:

- contacts: created; each standard or custom field changed (old → new); tags and lists added or
  removed; consent changed (with its source); unsubscribed or subscribed again; a form submitted
  (`last_submission` changes on every post, not only the first per form);
- participants: each trace entry appended (entered, messages sent or skipped with the reason, waits,
  branches, left, completed, failed, …) and each engagement mark added (opened, clicked);
- CRM objects: an activity, sale or request created or changed.

Item keys come from the record (see `storage.timeline`), so a redelivered record rewrites the same
items. Every write is guarded by a check on the contact: the same incarnation for a contact change, a
contact at least as old as the participant or CRM object otherwise. After an erasure (even when the
address has been used again since) a late record therefore writes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pynamodb.expressions.condition import Condition

from chalicelib.contacts.model import STANDARD_FIELDS
from chalicelib.engine.ports import Runtime
from chalicelib.logs import logger
from chalicelib.storage.models import ContactModel, CrmObjectModel, ParticipantModel
from chalicelib.storage.timeline import Entry

# Trace events of a participant, as timeline kinds; any other event is a `flow_step`.
_TRACE_KINDS = {
    "entered": "flow_entered",
    "completed": "flow_left",
    "exited": "flow_left",
    "failed": "flow_left",
    "sent": "message_sent",
    "send_unknown": "message_sent",
    "not_sent": "message_skipped",
    "skipped": "message_skipped",
    "waiting": "waiting",
    "branch": "branch",
}
_CHANNELS = {"send_email": "Email", "send_sms": "SMS", "notify": "Owner alert", "webhook": "Webhook"}
_ACTIVITY = {"follow_up": "Follow-up", "call": "Call", "meeting": "Meeting", "task": "Task"}


def timeline_change(rt: Runtime, change: Any) -> None:
    """Add what this change means for its contact's timeline."""
    if change.new is None:
        # A removal is an erasure (or part of one): it never adds to a timeline.
        return
    entries: list[Entry]
    guard: Condition
    if change.table == "contacts":
        new: Any = change.new
        entries = contact_entries(change.old, new)
        guard = ContactModel.created_at == new.created_at
    elif change.table == "participants":
        new = change.new
        entries = participant_entries(rt, change.old, new, change.at)
        guard = ContactModel.created_at <= new.entered_at
    elif change.table == "crm":
        new = change.new
        entries = crm_entries(change.old, new)
        guard = ContactModel.created_at <= new.created_at
    else:
        return
    if not entries:
        return
    if not rt.timeline.write(new.contact_id, change.event_id, entries, guard):
        logger.info(
            "timeline not written: the contact is gone",
            extra={"contact_id": new.contact_id, "table": change.table, "event_id": change.event_id},
        )


# --- contacts -------------------------------------------------------------------------------------


def _fields(item: ContactModel) -> dict[str, Any]:
    raw = item.fields
    return dict(raw.as_dict() if hasattr(raw, "as_dict") else raw or {})


def _show(value: Any) -> str:
    return "(empty)" if value is None or value == "" else repr(value)


def _consent_summary(channel: str, consent: dict[str, Any] | None) -> str:
    name = "Email" if channel == "email" else "SMS"
    if not consent:
        return f"{name} consent removed"
    return f"{name} consent {consent.get('status')} (source: {consent.get('source')}, at {consent.get('at')})"


def contact_entries(old: ContactModel | None, new: ContactModel) -> list[Entry]:
    at = new.updated_at
    out: list[Entry] = []
    if old is None:
        values = {name: getattr(new, name) for name in STANDARD_FIELDS if getattr(new, name) is not None}
        snapshot = {
            **values,
            "fields": _fields(new),
            "tags": sorted(new.tags or ()),
            "lists": sorted(new.lists or ()),
            "unsubscribed": sorted(new.unsubscribed or ()),
        }
        who = new.email or new.external_id or new.contact_id
        out.append(Entry(new.created_at, "contact_created", f"Contact {who} created", snapshot))
    else:
        for name in STANDARD_FIELDS:
            before, after = getattr(old, name), getattr(new, name)
            if before != after:
                detail = {"field": name, "old": before, "new": after}
                out.append(Entry(at, "field_changed", f"{name}: {_show(before)} → {_show(after)}", detail))
        before_fields, after_fields = _fields(old), _fields(new)
        for name in sorted(set(before_fields) | set(after_fields)):
            before, after = before_fields.get(name), after_fields.get(name)
            if before != after:
                path = f"fields.{name}"
                detail = {"field": path, "old": before, "new": after}
                out.append(Entry(at, "field_changed", f"{path}: {_show(before)} → {_show(after)}", detail))
        for attr, noun in (("tags", "tag"), ("lists", "list")):
            before_set, after_set = set(getattr(old, attr) or ()), set(getattr(new, attr) or ())
            for label in sorted(after_set - before_set):
                out.append(Entry(at, f"{noun}_added", f"{noun.capitalize()} {label!r} added", {noun: label}))
            for label in sorted(before_set - after_set):
                out.append(Entry(at, f"{noun}_removed", f"{noun.capitalize()} {label!r} removed", {noun: label}))
    for channel in ("email", "sms"):
        before_consent = getattr(old, f"consent_{channel}") if old is not None else None
        after_consent = getattr(new, f"consent_{channel}")
        if before_consent != after_consent:
            detail = {"channel": channel, "old": before_consent, "new": after_consent}
            out.append(Entry(at, "consent_changed", _consent_summary(channel, after_consent), detail))
    if old is not None:
        before_off, after_off = set(old.unsubscribed or ()), set(new.unsubscribed or ())
        for channel in sorted(after_off - before_off):
            out.append(Entry(at, "unsubscribed", f"Unsubscribed from {channel}", {"channel": channel}))
        for channel in sorted(before_off - after_off):
            out.append(Entry(at, "resubscribed", f"Subscribed again to {channel}", {"channel": channel}))
    submission = new.last_submission
    if submission and submission != (old.last_submission if old is not None else None):
        form = str(submission.get("form"))
        when = _moment(submission.get("at"), at)
        out.append(Entry(when, "form_submitted", f"Submitted form {form!r}", {"form": form}))
    return out


def _moment(raw: Any, default: dt.datetime) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(raw))
    except ValueError:
        return default
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- participants -----------------------------------------------------------------------------------


def participant_entries(
    rt: Runtime, old: ParticipantModel | None, new: ParticipantModel, at: dt.datetime
) -> list[Entry]:
    before = list(old.trace or []) if old is not None else []
    # The trace only grows (list_append), so what is new is what follows the old length.
    appended = list(new.trace or [])[len(before) :]
    marks = sorted(set(new.engagement or ()) - set(old.engagement or () if old is not None else ()))
    if not appended and not marks:
        return []
    flow = _flow_doc(rt, new.flow_id, int(new.version))
    name = str(flow.get("name") or new.flow_id)
    steps = {s.get("id"): s for s in flow.get("steps", []) if isinstance(s, dict)}
    base = {
        "flow_id": new.flow_id,
        "flow_name": name,
        "version": int(new.version),
        "participant_id": new.participant_id,
    }
    out = []
    for entry in appended:
        event, step_id, detail = str(entry.get("event")), entry.get("step"), str(entry.get("detail") or "")
        kind = _TRACE_KINDS.get(event, "flow_step")
        step = steps.get(step_id) or {}
        info: dict[str, Any] = {**base, "step": step_id, "event": event, "detail": detail}
        channel = _CHANNELS.get(str(step.get("type")))
        if channel:
            info["channel"] = channel
        summary = _trace_summary(event, name, int(new.version), step_id, step, channel, detail)
        out.append(Entry(_moment(entry.get("at"), new.updated_at), kind, summary, info))
    for mark in marks:
        event, _, target = mark.partition(":")
        if event not in ("opened", "clicked"):
            # A form submission is on the timeline from the contact's own change.
            continue
        step = steps.get(target) or {}
        label = step.get("label") or target
        verb = "Opened" if event == "opened" else "Clicked a link in"
        summary = f"{verb} the message “{label}” of flow “{name}”"
        out.append(Entry(at, event, summary, {**base, "step": target, "event": event}))
    return out


def _flow_doc(rt: Runtime, flow_id: str, version: int) -> dict[str, Any]:
    published = rt.flows.version(flow_id, version)
    return dict(published.document) if published is not None else {}


def _trace_summary(
    event: str, flow: str, version: int, step_id: Any, step: dict[str, Any], channel: str | None, detail: str
) -> str:
    label = f"“{step.get('label') or step_id}”"
    why = f": {detail}" if detail else ""
    match event:
        case "entered":
            return f"Entered flow “{flow}” (version {version}){why}"
        case "completed":
            return f"Completed flow “{flow}”{why}"
        case "exited":
            return f"Left flow “{flow}”{why}"
        case "failed":
            return f"Failed in flow “{flow}”{why}"
        case "sent":
            return f"{channel or 'Message'} {label} sent in flow “{flow}”"
        case "send_unknown":
            return f"{channel or 'Message'} {label} may have been sent in flow “{flow}” (not resent){why}"
        case "not_sent" | "skipped":
            return f"{channel or 'Message'} {label} not sent in flow “{flow}”{why}"
        case "waiting":
            return f"Waiting at {label} in flow “{flow}”{why}"
        case "branch":
            return f"Branch {label} in flow “{flow}”{why}"
        case _:
            return f"{event.replace('_', ' ').capitalize()} at {label} in flow “{flow}”{why}"


# --- CRM objects ------------------------------------------------------------------------------------


def describe_crm(kind: str, data: dict[str, Any]) -> str:
    """One line a marketer recognises: `Sale of 120.00 EUR: Boots (won)`."""
    if kind == "activity":
        text = f"{_ACTIVITY.get(str(data.get('type')), 'Activity')}: {data.get('subject')}"
        if data.get("due_date"):
            text += f", due {data['due_date']}"
        return text + (" (done)" if data.get("done") else "")
    if kind == "sale":
        product = f": {data['product']}" if data.get("product") else ""
        return f"Sale of {data.get('amount')} {data.get('currency')}{product} ({data.get('status')})"
    return f"Request: {data.get('subject')} ({data.get('status')}, {data.get('priority')} priority)"


def crm_entries(old: CrmObjectModel | None, new: CrmObjectModel) -> list[Entry]:
    kind = str(new.kind)
    data = dict(new.data or {})
    base = {"object_id": new.object_id, "object_kind": kind, "data": data}
    if old is None:
        return [Entry(new.created_at, f"{kind}_created", describe_crm(kind, data), base)]
    before = dict(old.data or {})
    changes = {
        key: {"old": before.get(key), "new": data.get(key)}
        for key in sorted(set(before) | set(data))
        if before.get(key) != data.get(key)
    }
    if not changes:
        return []
    listed = ", ".join(f"{k}: {_show(v['old'])} → {_show(v['new'])}" for k, v in changes.items())
    summary = f"{describe_crm(kind, data)}; changed {listed}"
    return [Entry(new.updated_at, f"{kind}_changed", summary, {**base, "changes": changes})]
