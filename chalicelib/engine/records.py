"""A contact's records: its CRM objects, its timeline, its export and its erasure (GDPR).

CRM objects (activities, sales, requests) are written here and nowhere else; what follows from them
(the timeline today, triggers and success criteria later) is derived from the CRM table's change
stream, once, in `engine.changes`.

Erasure removes the contact and everything keyed to it, in an order that leaves nothing behind:

1. its running executions are stopped, so no step of a flow acts on it any more;
2. the hash of its address is kept as a suppression (a later contact with the same address starts
   unsubscribed from email), then the contact and its key items are deleted in one transaction;
   from here on nothing new can attach to it: timeline writes and new CRM objects check that the
   contact exists, in the same transaction;
3. its participants (read again, so an entry made meanwhile is caught and stopped too), parked
   waits, CRM objects and timeline items are deleted. The segment index follows from the contact's
   removal on the change stream.

Send claims are kept: a claim holds only ids (flow, participant, step, visit), a channel, a status
and the provider's message id, no address or name, and it is what keeps an in-flight redelivery of a
stopped execution's task from sending. A second erasure of the same contact finds nothing and is a 404;
if an erasure was cut off after the contact was deleted, repeating it removes the rest.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import TransactWriteError

from chalicelib.contacts.crm import NEW, CrmKind, check_new, merge
from chalicelib.contacts.input import InputError
from chalicelib.engine.contacts import contact_view, invalid
from chalicelib.engine.errors import BadRequest, Conflict, NotFound
from chalicelib.engine.ports import Runtime
from chalicelib.logs import logger
from chalicelib.storage import records
from chalicelib.storage.crm import ContactGone, kind_of
from chalicelib.storage.models import (
    ContactModel,
    CrmObjectModel,
    ParkedWaitModel,
    ParticipantModel,
    TimelineModel,
)
from chalicelib.storage.paging import InvalidCursor, Page
from chalicelib.storage.repos import TERMINAL

# Ids this stack hands out are short; a longer one is unknown (and DynamoDB would refuse it as a key).
MAX_ID = 200
# Plural names, as in the routes and in the export.
PLURAL: dict[str, str] = {"activity": "activities", "sale": "sales", "request": "requests"}


def crm_view(item: CrmObjectModel) -> dict[str, Any]:
    data = dict(item.data or {})
    return {
        "object_id": item.object_id,
        "contact_id": item.contact_id,
        "kind": item.kind,
        # Every field of the kind, null when not set, so each answer has the same shape.
        **{name: data.get(name) for name in NEW[item.kind].model_fields},
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def timeline_view(item: TimelineModel) -> dict[str, Any]:
    return {
        "id": item.at_id,
        "at": item.at_id.split("#", 1)[0],
        "kind": item.kind,
        "summary": item.summary,
        "detail": dict(item.detail or {}),
    }


def participation_view(item: ParticipantModel, flow_name: str | None) -> dict[str, Any]:
    return {
        "flow_id": item.flow_id,
        "flow_name": flow_name,
        "participant_id": item.participant_id,
        "entry": int(item.entry),
        "version": int(item.version),
        "status": item.status,
        "reason": item.reason,
        "current_step": item.current_step,
        "entered_at": item.entered_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
        "last_message": item.last_message,
        "engagement": sorted(item.engagement or ()),
        "trace": [dict(e) for e in item.trace or []],
    }


class ContactRecords:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def contact(self, contact_id: str) -> ContactModel:
        item = self._rt.contacts.get_item(contact_id) if len(contact_id.encode()) <= MAX_ID else None
        if item is None:
            raise NotFound("contact_not_found", f"no contact {contact_id!r}")
        return item

    # -- CRM objects -------------------------------------------------------------------------------

    def create(self, contact_id: str, kind: CrmKind, body: Any) -> dict[str, Any]:
        self.contact(contact_id)
        try:
            data = check_new(kind, body)
        except InputError as exc:
            raise invalid(exc, kind) from None
        try:
            item = self._rt.crm.create(contact_id, kind, data)
        except ContactGone:
            raise NotFound("contact_not_found", f"no contact {contact_id!r}") from None
        return crm_view(item)

    def get(self, contact_id: str, kind: CrmKind, object_id: str) -> CrmObjectModel:
        ours = kind_of(object_id) == kind and len(object_id.encode()) <= MAX_ID
        item = self._rt.crm.get(contact_id, object_id) if ours and len(contact_id.encode()) <= MAX_ID else None
        if item is None:
            self.contact(contact_id)
            raise NotFound(f"{kind}_not_found", f"contact {contact_id!r} has no {kind} {object_id!r}")
        return item

    def patch(self, contact_id: str, kind: CrmKind, object_id: str, body: Any) -> dict[str, Any]:
        for _ in range(5):
            item = self.get(contact_id, kind, object_id)
            try:
                data = merge(kind, dict(item.data or {}), body)
            except InputError as exc:
                raise invalid(exc, kind) from None
            if data == dict(item.data or {}):
                return crm_view(item)
            if self._rt.crm.replace_data(item, data):
                return crm_view(item)
        raise Conflict("changed_meanwhile", f"the {kind} kept changing; try again")

    def page(self, contact_id: str, kind: CrmKind, *, cursor: str | None, limit: int) -> Page[CrmObjectModel]:
        self.contact(contact_id)
        try:
            return self._rt.crm.page(contact_id, kind, cursor=cursor, limit=limit)
        except InvalidCursor as exc:
            raise BadRequest("invalid_cursor", str(exc)) from None

    # -- timeline ----------------------------------------------------------------------------------

    def timeline(
        self, contact_id: str, *, cursor: str | None, limit: int, kinds: frozenset[str] | None
    ) -> Page[TimelineModel]:
        self.contact(contact_id)
        try:
            return self._rt.timeline.page(contact_id, cursor=cursor, limit=limit, kinds=kinds)
        except InvalidCursor as exc:
            raise BadRequest("invalid_cursor", str(exc)) from None

    # -- export ------------------------------------------------------------------------------------

    def export(self, contact_id: str) -> dict[str, Any]:
        """Everything stored about the contact, as one document (the right of access)."""
        rt = self._rt
        item = self.contact(contact_id)
        names: dict[tuple[str, int], str | None] = {}
        flows = []
        for participant in records.participants_of(contact_id):
            key = (participant.flow_id, int(participant.version))
            if key not in names:
                published = rt.flows.version(*key)
                names[key] = str(published.document.get("name")) if published is not None else None
            flows.append(participation_view(participant, names[key]))
        crm: dict[str, list[dict[str, Any]]] = {plural: [] for plural in PLURAL.values()}
        for obj in rt.crm.of_contact(contact_id):
            crm[PLURAL[obj.kind]].append(crm_view(obj))
        return {
            "contact_id": contact_id,
            "exported_at": rt.clock().isoformat(),
            "contact": contact_view(item),
            "consent": {"email": item.consent_email, "sms": item.consent_sms},
            "last_submission": item.last_submission,
            "flows": flows,
            "waiting_for": [_wait_view(w) for w in records.waits_of(contact_id)],
            **crm,
            "timeline": [timeline_view(t) for t in rt.timeline.of_contact(contact_id)],
        }

    # -- erasure -----------------------------------------------------------------------------------

    def erase(self, contact_id: str) -> dict[str, Any]:
        rt = self._rt
        if len(contact_id.encode()) > MAX_ID:
            raise NotFound("contact_not_found", f"no contact {contact_id!r}")
        item = rt.contacts.get_item(contact_id)
        participants = {(p.flow_id, p.participant_id): p for p in records.participants_of(contact_id)}
        stopped = self._stop(participants.values())
        contact_removed, suppressed = self._delete_contact(contact_id, item)
        # Entries made while the contact was being deleted are caught here; none can be made after.
        late = {(p.flow_id, p.participant_id): p for p in records.participants_of(contact_id)}
        stopped += self._stop(p for key, p in late.items() if key not in participants)
        participants |= late
        removed = {
            "contact": contact_removed,
            "participants": records.delete_participants(list(participants.values())),
            "executions_stopped": stopped,
            "waits": records.delete_waits(records.waits_of(contact_id)),
            "crm_objects": rt.crm.erase(contact_id),
            "timeline_items": rt.timeline.erase(contact_id),
        }
        if not any(removed.values()):
            raise NotFound("contact_not_found", f"no contact {contact_id!r}")
        logger.info("contact erased", extra={"contact_id": contact_id, "removed": removed})
        return {
            "contact_id": contact_id,
            "erased_at": rt.clock().isoformat(),
            "email_suppressed": suppressed,
            "removed": removed,
        }

    def _stop(self, participants: Any) -> int:
        stopped = 0
        for p in participants:
            if p.status not in TERMINAL and p.execution_arn:
                self._rt.machines.stop(p.execution_arn, cause="the contact was erased")
                stopped += 1
        return stopped

    def _delete_contact(self, contact_id: str, item: ContactModel | None) -> tuple[int, bool]:
        """(1 if the contact was deleted here, whether its address is suppressed)."""
        suppressed = False
        for _ in range(5):
            if item is None:
                return 0, suppressed
            if item.email:
                # Before the delete: there is no moment when the address could come back mailable.
                self._rt.contacts.suppress(item.email, "erased")
                suppressed = True
            try:
                self._rt.contacts.delete(item)
                return 1, suppressed
            except TransactWriteError:
                # Its address or external id changed meanwhile: read it again (and suppress the new address).
                item = self._rt.contacts.get_item(contact_id)
        raise Conflict("changed_meanwhile", "the contact kept changing during the erasure; try again")


def _wait_view(item: ParkedWaitModel) -> dict[str, Any]:
    event, target, flow_id, participant_id = item.wait_key.split("#", 3)
    return {
        "event": event,
        "target": target,
        "flow_id": flow_id,
        "participant_id": participant_id,
        "parked_at": item.parked_at.isoformat(),
    }
