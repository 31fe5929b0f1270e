"""CRM objects of a contact: activities, sales, requests.

One partition per contact; an object's id starts with its kind and the time it was made
(`sale_<µs since epoch, hex>_<random>`), so one kind of a contact is a key query, newest first.
A new object is written in a transaction with a check that its contact exists: an object can never
outlive an erased contact. Every write streams to the change worker, which puts it on the timeline.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.storage import models
from chalicelib.storage.models import ContactModel, CrmObjectModel
from chalicelib.storage.paging import Page, encode_cursor
from chalicelib.storage.records import erase_partition, partition_start
from chalicelib.storage.time import Clock, utcnow

PREFIX = {"activity": "act_", "sale": "sale_", "request": "req_"}


class ContactGone(Exception):
    """The contact does not exist (never did, or was erased)."""


def kind_of(object_id: str) -> str | None:
    for kind, prefix in PREFIX.items():
        if object_id.startswith(prefix):
            return kind
    return None


class CrmObjects:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    def new_id(self, kind: str) -> str:
        micros = int(self._clock().timestamp() * 1_000_000)
        return f"{PREFIX[kind]}{micros:014x}_{secrets.token_hex(4)}"

    def create(self, contact_id: str, kind: str, data: dict[str, Any]) -> CrmObjectModel:
        """The new object; raises ContactGone when there is no such contact."""
        now = self._clock()
        item = CrmObjectModel(
            contact_id=contact_id, object_id=self.new_id(kind), kind=kind, data=data, created_at=now, updated_at=now
        )
        try:
            with TransactWrite(connection=models.connection()) as tx:
                tx.condition_check(ContactModel, contact_id, condition=ContactModel.contact_id.exists())
                tx.save(item, condition=CrmObjectModel.object_id.does_not_exist())
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if exc.cause_response_code == "TransactionCanceledException" and _failed_check(reasons, 0):
                raise ContactGone(contact_id) from None
            raise
        return item

    def get(self, contact_id: str, object_id: str) -> CrmObjectModel | None:
        try:
            return CrmObjectModel.get(contact_id, object_id, consistent_read=True)
        except DoesNotExist:
            return None

    def replace_data(self, item: CrmObjectModel, data: dict[str, Any]) -> bool:
        """Store the changed object unless someone changed it meanwhile (False: read it again)."""
        try:
            item.update(
                actions=[CrmObjectModel.data.set(data), CrmObjectModel.updated_at.set(self._clock())],
                condition=CrmObjectModel.updated_at == item.updated_at,
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def page(self, contact_id: str, kind: str, *, cursor: str | None, limit: int) -> Page[CrmObjectModel]:
        """One kind of a contact's objects, newest first; raises InvalidCursor for a cursor of another list."""
        result = CrmObjectModel.query(
            contact_id,
            CrmObjectModel.object_id.startswith(PREFIX[kind]),
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=partition_start(cursor, "contact_id", contact_id, "object_id", PREFIX[kind]),
            consistent_read=True,
        )
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def of_contact(self, contact_id: str) -> Iterator[CrmObjectModel]:
        return iter(CrmObjectModel.query(contact_id, consistent_read=True))

    def erase(self, contact_id: str) -> int:
        """Delete every object of the contact; how many there were."""
        return erase_partition(CrmObjectModel, contact_id, "object_id")


def _failed_check(reasons: list[Any], index: int) -> bool:
    reason = reasons[index] if index < len(reasons) else None
    return reason is not None and reason.code == "ConditionalCheckFailed"
