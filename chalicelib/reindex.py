"""Rebuilding the segment index from the contacts themselves.

The change worker keeps the index in step with every contact change. When it could not (a change
batch dead-lettered and no longer in the stream, a table restored from a backup, contacts written
before the index existed), `reindex` compares, contact by contact, the entries the index holds with
the entries the stored contact has, and puts and deletes the difference. A contact whose entries
differ is read again (strongly consistent) just before its fix, so a change made while the scan ran
is not undone; running it again changes nothing.

It holds each contact's entries in memory (about a kilobyte per contact): a million contacts take
about a gigabyte in the operator's shell.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from chalicelib.engine.segments import entries_of
from chalicelib.storage.models import ContactModel, SegmentIndexModel
from chalicelib.storage.segment_index import SegmentIndex


@dataclass
class Reindex:
    dry_run: bool
    contacts: int = 0
    entries: int = 0
    contacts_fixed: int = 0
    added: int = 0
    removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "contacts": self.contacts,
            "entries": self.entries,
            # In a dry run: what a run would fix.
            "contacts_fixed": self.contacts_fixed,
            "entries_added": self.added,
            "entries_removed": self.removed,
        }


def reindex(index: SegmentIndex, *, dry_run: bool = False) -> Reindex:
    out = Reindex(dry_run=dry_run)
    expected: dict[str, frozenset[str]] = {}
    for item in ContactModel.scan():
        expected[str(item.contact_id)] = entries_of(item)
        out.contacts += 1
    held: dict[str, set[str]] = defaultdict(set)
    for entry in SegmentIndexModel.scan():
        held[str(entry.contact_id)].add(str(entry.entry))
        out.entries += 1
    for contact_id in sorted(expected.keys() | held.keys()):
        want, have = expected.get(contact_id, frozenset()), held.get(contact_id, set())
        if want == have:
            continue
        # Read again: the scan may have seen the contact before a change the worker has indexed since.
        want = entries_of(_current(contact_id))
        add, remove = want - have, have - want
        if not add and not remove:
            continue
        out.contacts_fixed += 1
        out.added += len(add)
        out.removed += len(remove)
        if not dry_run:
            index.apply(contact_id, add=add, remove=remove)
    return out


def _current(contact_id: str) -> ContactModel | None:
    try:
        return ContactModel.get(contact_id, consistent_read=True)
    except ContactModel.DoesNotExist:
        return None
