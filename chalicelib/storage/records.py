"""Everything keyed to one contact outside its own item: its flow entries and parked waits.

Erasure and export read these across flows: participants through the `by_contact` index (keys only,
then read whole and consistently), parked waits by their hash key, which is the contact id.
"""

from __future__ import annotations

from typing import Any

from chalicelib.storage.models import ParkedWaitModel, ParticipantModel
from chalicelib.storage.paging import InvalidCursor, decode_cursor


def participants_of(contact_id: str) -> list[ParticipantModel]:
    """Every flow entry of the contact, oldest first."""
    keys = [(p.flow_id, p.participant_id) for p in ParticipantModel.by_contact.query(contact_id)]
    # The index is eventually consistent and holds keys only: the items are read as they are now.
    found = list(ParticipantModel.batch_get(keys, consistent_read=True)) if keys else []
    return sorted(found, key=lambda p: (p.entered_at, p.flow_id))


def delete_participants(items: list[ParticipantModel]) -> int:
    with ParticipantModel.batch_write() as batch:
        for item in items:
            batch.delete(ParticipantModel(flow_id=item.flow_id, participant_id=item.participant_id))
    return len(items)


def waits_of(contact_id: str) -> list[ParkedWaitModel]:
    return list(ParkedWaitModel.query(contact_id, consistent_read=True))


def delete_waits(items: list[ParkedWaitModel]) -> int:
    with ParkedWaitModel.batch_write() as batch:
        for item in items:
            batch.delete(ParkedWaitModel(contact_id=item.contact_id, wait_key=item.wait_key))
    return len(items)


def erase_partition(model: Any, contact_id: str, range_name: str) -> int:
    """Delete every item of a table partitioned by contact (keys read consistently); how many there were."""
    removed = 0
    with model.batch_write() as batch:
        for item in model.query(contact_id, consistent_read=True, attributes_to_get=[range_name]):
            batch.delete(model(contact_id, getattr(item, range_name)))
            removed += 1
    return removed


def partition_start(cursor: str | None, hash_name: str, hash_value: str, range_name: str, prefix: str = "") -> Any:
    """The start key a cursor stands for, in one contact's partition; raises InvalidCursor otherwise.

    DynamoDB refuses a start key outside the query (another contact, another kind) with an error
    that would be a 500; a cursor from another list is the caller's mistake, answered as a 400.
    """
    start = decode_cursor(cursor)
    if start is None:
        return None
    if (
        set(start) != {hash_name, range_name}
        or start[hash_name] != {"S": hash_value}
        or set(start[range_name]) != {"S"}
        or not str(start[range_name]["S"]).startswith(prefix)
    ):
        raise InvalidCursor("the cursor is not one this list gave out")
    return start
