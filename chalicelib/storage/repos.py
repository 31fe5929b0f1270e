"""Repositories: the reads and writes the use cases need, each one DynamoDB request where possible.

Conditional writes carry the invariants: one contact per new email address, one participant per
(flow, contact, entry), one send per claim. The clock is passed in so tests control time.
"""

from __future__ import annotations

import uuid
from typing import Any, TypedDict, Unpack

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactGet, TransactWrite

from chalicelib.contacts.model import STANDARD_FIELDS, Contact
from chalicelib.storage import models
from chalicelib.storage.models import (
    ClaimModel,
    ContactModel,
    FlowModel,
    FlowVersionModel,
    FormModel,
    ParkedWaitModel,
    ParticipantModel,
)
from chalicelib.storage.paging import Page, decode_cursor, encode_cursor
from chalicelib.storage.time import Clock, utcnow

TERMINAL = frozenset({"completed", "exited", "failed"})


class Move(TypedDict, total=False):
    """How a participant item changes: trace entries to append, and where it now stands."""

    trace: list[dict[str, Any]]
    status: str | None
    reason: str | None
    current_step: str | None
    last_message: dict[str, Any] | None
    # Only while it is still in the flow: a participant that left keeps its ending.
    only_if_open: bool


def _conditional_failed(exc: PutError | UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def to_contact(item: ContactModel) -> Contact:
    return Contact(
        contact_id=item.contact_id,
        **{name: getattr(item, name) for name in STANDARD_FIELDS},
        fields=item.fields.as_dict() if hasattr(item.fields, "as_dict") else dict(item.fields or {}),
        tags=frozenset(item.tags or ()),
        lists=frozenset(item.lists or ()),
        unsubscribed=frozenset(item.unsubscribed or ()),
    )


class Flows:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        # Published versions never change, so a container may keep them.
        self._versions: dict[tuple[str, int], FlowVersionModel] = {}

    def create(self, name: str, draft: dict[str, Any]) -> FlowModel:
        now = self._clock()
        item = FlowModel(
            flow_id="fl_" + uuid.uuid4().hex[:12],
            name=name,
            draft=draft,
            status="draft",
            created_at=now,
            updated_at=now,
        )
        item.save(condition=FlowModel.flow_id.does_not_exist())
        return item

    def get(self, flow_id: str) -> FlowModel | None:
        try:
            return FlowModel.get(flow_id, consistent_read=True)
        except DoesNotExist:
            return None

    def page(self, *, cursor: str | None, limit: int) -> Page[FlowModel]:
        result = FlowModel.scan(limit=limit, last_evaluated_key=decode_cursor(cursor))
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def save_draft(self, item: FlowModel, name: str, draft: dict[str, Any]) -> None:
        item.update(
            actions=[FlowModel.draft.set(draft), FlowModel.name.set(name), FlowModel.updated_at.set(self._clock())]
        )

    def set_status(self, item: FlowModel, status: str, *, trigger_key: str | None, version: int | None = None) -> None:
        actions: list[Action] = [FlowModel.status.set(status), FlowModel.updated_at.set(self._clock())]
        actions.append(FlowModel.trigger_key.set(trigger_key) if trigger_key else FlowModel.trigger_key.remove())
        if version is not None:
            actions.append(FlowModel.current_version.set(version))
        item.update(actions=actions)

    def add_version(self, flow_id: str, version: int, document: dict[str, Any], state_machine_arn: str) -> None:
        item = FlowVersionModel(
            flow_id=flow_id,
            version=version,
            document=document,
            state_machine_arn=state_machine_arn,
            published_at=self._clock(),
        )
        item.save(condition=FlowVersionModel.version.does_not_exist())

    def version(self, flow_id: str, version: int) -> FlowVersionModel | None:
        key = (flow_id, version)
        if key not in self._versions:
            try:
                self._versions[key] = FlowVersionModel.get(flow_id, version)
            except DoesNotExist:
                return None
        return self._versions[key]

    def versions(self, flow_id: str) -> list[FlowVersionModel]:
        return list(FlowVersionModel.query(flow_id))

    def listening(self, trigger_key: str) -> list[FlowModel]:
        return [f for f in FlowModel.by_trigger.query(trigger_key) if f.status == "active"]


class Participants:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    def get(self, flow_id: str, participant_id: str) -> ParticipantModel | None:
        try:
            return ParticipantModel.get(flow_id, participant_id, consistent_read=True)
        except DoesNotExist:
            return None

    def snapshot(
        self, flow_id: str, participant_id: str, contact_id: str
    ) -> tuple[ParticipantModel | None, FlowModel | None, ContactModel | None]:
        return snapshot(flow_id, participant_id, contact_id)

    def entries(self, flow_id: str, contact_id: str) -> list[ParticipantModel]:
        return list(
            ParticipantModel.query(
                flow_id, ParticipantModel.participant_id.startswith(contact_id + "."), consistent_read=True
            )
        )

    def of_flow(self, flow_id: str, *, status: str | None = None, limit: int = 100) -> list[ParticipantModel]:
        condition = ParticipantModel.status == status if status else None
        return list(ParticipantModel.query(flow_id, filter_condition=condition, limit=limit))

    def page_of_flow(
        self, flow_id: str, *, status: str | None = None, cursor: str | None, limit: int
    ) -> Page[ParticipantModel]:
        condition = ParticipantModel.status == status if status else None
        result = ParticipantModel.query(
            flow_id, filter_condition=condition, limit=limit, last_evaluated_key=decode_cursor(cursor)
        )
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def create(self, item: ParticipantModel) -> bool:
        """False when this entry exists already (a duplicate enrollment)."""
        try:
            item.save(condition=ParticipantModel.participant_id.does_not_exist())
            return True
        except PutError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def started(self, item: ParticipantModel, execution_arn: str) -> None:
        actions: list[Action] = [ParticipantModel.execution_arn.set(execution_arn)]
        try:
            # The first step may already have moved the participant on; only "starting" becomes "active".
            item.update(
                actions=[*actions, ParticipantModel.status.set("active")],
                condition=ParticipantModel.status == "starting",
            )
        except UpdateError as exc:
            if not _conditional_failed(exc):
                raise
            item.update(actions=actions)

    def record(self, flow_id: str, participant_id: str, **move: Unpack[Move]) -> bool:
        """Append to the trace and move the participant; False if `only_if_open` and it had left."""
        item, actions, condition = self._record(flow_id, participant_id, move)
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def record_with_claim(
        self, claim: ClaimModel, claim_actions: list[Action], flow_id: str, participant_id: str, **move: Unpack[Move]
    ) -> bool:
        """Settle a send claim and record the participant in one transaction (one request)."""
        item, actions, condition = self._record(flow_id, participant_id, move)
        try:
            with TransactWrite(connection=models.connection()) as tx:
                tx.update(claim, actions=claim_actions)
                tx.update(item, actions=actions, condition=condition)
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                raise
            # The participant left meanwhile: the claim's outcome must still be kept.
            claim.update(actions=claim_actions)
            return False
        return True

    def _record(
        self, flow_id: str, participant_id: str, move: Move
    ) -> tuple[ParticipantModel, list[Action], Condition]:
        item = ParticipantModel(flow_id=flow_id, participant_id=participant_id)
        actions: list[Action] = [ParticipantModel.updated_at.set(self._clock())]
        if move.get("trace"):
            actions.append(ParticipantModel.trace.set(ParticipantModel.trace.append(move["trace"])))
        for name in ("status", "reason", "current_step"):
            value = move.get(name)
            if value:
                actions.append(getattr(ParticipantModel, name).set(value))
        if move.get("last_message") is not None:
            actions.append(ParticipantModel.last_message.set(move["last_message"]))
        condition = ParticipantModel.participant_id.exists()
        if move.get("only_if_open"):
            condition &= ParticipantModel.status.is_in("starting", "active", "waiting")
        return item, actions, condition

    def add_engagement(self, flow_id: str, participant_id: str, marks: set[str]) -> bool:
        item = ParticipantModel(flow_id=flow_id, participant_id=participant_id)
        try:
            item.update(
                actions=[ParticipantModel.engagement.add(marks)], condition=ParticipantModel.participant_id.exists()
            )
        except UpdateError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True


class Claims:
    """Send claims: `claim` succeeds once per key; the outcome is written on the same item."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    def claim(self, claim_id: str, channel: str) -> ClaimModel | None:
        """The new claim, or None if someone claimed this slot before (never send then)."""
        item = ClaimModel(claim_id=claim_id, status="claimed", channel=channel, claimed_at=self._clock())
        try:
            item.save(condition=ClaimModel.claim_id.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return item

    def get(self, claim_id: str) -> ClaimModel | None:
        try:
            return ClaimModel.get(claim_id, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def settlement(status: str, *, message_id: str | None, detail: str) -> list[Action]:
        actions: list[Action] = [ClaimModel.status.set(status), ClaimModel.detail.set(detail or "-")]
        if message_id:
            actions.append(ClaimModel.message_id.set(message_id))
        return actions


class Waits:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    @staticmethod
    def key(event: str, target: str, flow_id: str, participant_id: str) -> str:
        return f"{event}#{target}#{flow_id}#{participant_id}"

    def park(self, contact_id: str, wait_key: str, task_token: str) -> None:
        ParkedWaitModel(contact_id=contact_id, wait_key=wait_key, task_token=task_token, parked_at=self._clock()).save()

    def find(self, contact_id: str, prefix: str) -> list[ParkedWaitModel]:
        return list(ParkedWaitModel.query(contact_id, ParkedWaitModel.wait_key.startswith(prefix)))

    def remove(self, item: ParkedWaitModel) -> None:
        item.delete()


class Forms:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    def create(self, form_key: str, name: str, owner_email: str | None = None) -> FormModel | None:
        item = FormModel(form_key=form_key, name=name, owner_email=owner_email, created_at=self._clock())
        try:
            item.save(condition=FormModel.form_key.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return item

    def get(self, form_key: str) -> FormModel | None:
        try:
            return FormModel.get(form_key)
        except DoesNotExist:
            return None

    def page(self, *, cursor: str | None, limit: int) -> Page[FormModel]:
        result = FormModel.scan(limit=limit, last_evaluated_key=decode_cursor(cursor))
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def update(self, form_key: str, name: str, owner_email: str | None) -> FormModel | None:
        """The changed form, or None when there is no such form."""
        item = FormModel(form_key=form_key)
        owner: Action = FormModel.owner_email.set(owner_email) if owner_email else FormModel.owner_email.remove()
        try:
            item.update(actions=[FormModel.name.set(name), owner], condition=FormModel.form_key.exists())
        except UpdateError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return item

    def delete(self, form_key: str) -> bool:
        """False when there was no such form."""
        try:
            FormModel(form_key=form_key).delete(condition=FormModel.form_key.exists())
        except DeleteError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True


def snapshot(
    flow_id: str, participant_id: str, contact_id: str
) -> tuple[ParticipantModel | None, FlowModel | None, ContactModel | None]:
    """The participant, its flow and its contact as they are now, read in one request."""
    with TransactGet(connection=models.connection()) as tx:
        participant = tx.get(ParticipantModel, flow_id, participant_id)
        flow = tx.get(FlowModel, flow_id)
        contact = tx.get(ContactModel, contact_id)

    def value(future: Any) -> Any:
        try:
            return future.get()
        except DoesNotExist:
            return None

    return value(participant), value(flow), value(contact)
