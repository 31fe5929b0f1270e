"""The segment index: one item per (indexed value, contact), kept by the change worker.

Every read here is eventually consistent (half a read unit per 4 KB): the index itself follows the
contacts a moment behind, through the change stream, so a strongly consistent read would buy nothing.
Each partition (`entry`) is sorted by contact id, which lets several partitions be merged page by page
with "after this contact id" as the only position to remember.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from chalicelib.storage.models import ContactModel, SegmentIndexModel
from chalicelib.storage.time import Clock, utcnow

# BatchGetItem takes at most 100 keys per request.
BATCH_GET = 100


class SegmentIndex:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    # -- writes (the change worker) --------------------------------------------------------------

    def apply(self, contact_id: str, *, add: Iterable[str], remove: Iterable[str]) -> None:
        """Put and delete a contact's entries in batches; doing it again changes nothing."""
        puts, deletes = sorted(add), sorted(remove)
        if not puts and not deletes:
            return
        with SegmentIndexModel.batch_write() as batch:
            for entry in puts:
                batch.save(SegmentIndexModel(entry, contact_id))
            for entry in deletes:
                batch.delete(SegmentIndexModel(entry, contact_id))

    # -- reads -----------------------------------------------------------------------------------

    def count(self, entry: str) -> int:
        """How many contacts have this entry: a `Select=COUNT` query, no items sent back."""
        return int(SegmentIndexModel.count(entry))

    def ids(self, entry: str) -> Iterator[str]:
        """Every contact id with this entry, in order."""
        for item in SegmentIndexModel.query(entry):
            yield str(item.contact_id)

    def ids_after(self, entries: Iterable[str], after: str | None, limit: int) -> list[str]:
        """The first `limit` contact ids after `after` in the union of these entries, in order.

        The first `limit` of the union are among the first `limit` of each partition, so one bounded
        query per partition is enough.
        """
        found: set[str] = set()
        for entry in entries:
            condition = SegmentIndexModel.contact_id > after if after else None
            for item in SegmentIndexModel.query(entry, condition, limit=limit):
                found.add(str(item.contact_id))
        return sorted(found)[:limit]

    def contacts(self, contact_ids: Iterable[str]) -> dict[str, ContactModel]:
        """The contacts with these ids that exist, by id (BatchGetItem, 100 keys a request)."""
        wanted = list(dict.fromkeys(contact_ids))
        out: dict[str, ContactModel] = {}
        for start in range(0, len(wanted), BATCH_GET):
            for item in ContactModel.batch_get(wanted[start : start + BATCH_GET]):
                out[str(item.contact_id)] = item
        return out
