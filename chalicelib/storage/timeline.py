"""A contact's timeline: what happened to it, newest first.

Items are keyed `<UTC time>#<stream event id>#<n>`: the change worker derives the key from the change
it reads, so a redelivered change writes the same items again instead of new ones. Items are
written in one transaction with a check on the contact (the `guard`): once the contact is erased (or
erased and created again from the same address) a late change writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from chalicelib.storage import models
from chalicelib.storage.models import ContactModel, TimelineModel
from chalicelib.storage.paging import Page, encode_cursor
from chalicelib.storage.records import erase_partition, partition_start
from chalicelib.storage.time import Clock, utcnow

# A transaction holds at most 100 items: the guard and 99 timeline items.
_CHUNK = 99


@dataclass(frozen=True)
class Entry:
    """One timeline item before it is stored."""

    at: dt.datetime
    kind: str
    summary: str
    detail: dict[str, Any]


def stamp(moment: dt.datetime) -> str:
    """A fixed-width UTC time, so that keys sort in time order."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Timeline:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    def write(self, contact_id: str, event_id: str, entries: Sequence[Entry], guard: Condition) -> bool:
        """Store the entries of one change while `guard` holds on the contact; False when it does not."""
        items = [
            TimelineModel(
                contact_id=contact_id,
                at_id=f"{stamp(e.at)}#{event_id}#{n:03d}",
                kind=e.kind,
                summary=e.summary[:1000],
                detail=e.detail,
            )
            for n, e in enumerate(entries)
        ]
        for start in range(0, len(items), _CHUNK):
            try:
                with TransactWrite(connection=models.connection()) as tx:
                    tx.condition_check(ContactModel, contact_id, condition=guard)
                    for item in items[start : start + _CHUNK]:
                        tx.save(item)
            except TransactWriteError as exc:
                canceled = exc.cause_response_code == "TransactionCanceledException"
                first = (exc.cancellation_reasons or [None])[0] if canceled else None
                if first is not None and first.code == "ConditionalCheckFailed":
                    return False
                # A conflict with a write in flight: the change is delivered again and retried.
                raise
        return True

    def page(
        self, contact_id: str, *, cursor: str | None, limit: int, kinds: frozenset[str] | None = None
    ) -> Page[TimelineModel]:
        """Newest first; with `kinds`, only those (read on until the page is full or the timeline ends).

        The cursor is the key of the last item answered, so a page never ends in the middle of what
        DynamoDB read. Raises InvalidCursor for a cursor of another list.
        """
        condition = TimelineModel.kind.is_in(*kinds) if kinds else None
        result = TimelineModel.query(
            contact_id,
            scan_index_forward=False,
            filter_condition=condition,
            last_evaluated_key=partition_start(cursor, "contact_id", contact_id, "at_id"),
            page_size=max(limit, 25) if kinds else limit + 1,
            consistent_read=True,
        )
        items: list[TimelineModel] = []
        for item in result:
            items.append(item)
            if len(items) > limit:
                break
        if len(items) <= limit:
            return Page(items, None)
        last = items[limit - 1]
        key = {"contact_id": {"S": last.contact_id}, "at_id": {"S": last.at_id}}
        return Page(items[:limit], encode_cursor(key))

    def of_contact(self, contact_id: str) -> Iterator[TimelineModel]:
        """Every item, newest first."""
        return iter(TimelineModel.query(contact_id, scan_index_forward=False, consistent_read=True))

    def erase(self, contact_id: str) -> int:
        return erase_partition(TimelineModel, contact_id, "at_id")
