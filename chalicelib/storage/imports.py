"""Bulk imports: their progress counters and per-row error reports.

An import is one item. The upload creates it (`receiving`), queues its chunks, then marks it `queued`
with the row totals; the worker counts each applied chunk with a conditional update on the
`done_chunks` set, so a chunk that SQS delivers twice is counted once. Whichever of the two writes
last sees every chunk done and marks the import `done` (updates of one item are serialised, so one
of them always does).

Stored row errors are capped at `MAX_ERRORS`; `error_count` counts them all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError
from pynamodb.expressions.condition import Condition, size
from pynamodb.expressions.update import Action

from chalicelib.storage.models import ImportModel
from chalicelib.storage.paging import Page, decode_cursor, encode_cursor
from chalicelib.storage.time import Clock, utcnow

MAX_ERRORS = 100
# Kept this long; a re-upload of the same file within it answers with this import.
KEEP = dt.timedelta(days=90)
_ATTEMPTS = 20

RECEIVING, QUEUED, RUNNING, DONE = "receiving", "queued", "running", "done"


def _conditional_failed(exc: UpdateError | PutError | DeleteError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def _size_is(attr: Any, n: int) -> Condition:
    """The stored list or set has exactly n elements (DynamoDB stores no empty set)."""
    return attr.does_not_exist() | (size(attr) == 0) if n == 0 else size(attr) == n


class Imports:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    def get(self, import_id: str) -> ImportModel | None:
        try:
            return ImportModel.get(import_id, consistent_read=True)
        except DoesNotExist:
            return None

    def page(self, *, cursor: str | None, limit: int) -> Page[ImportModel]:
        result = ImportModel.scan(limit=limit, last_evaluated_key=decode_cursor(cursor))
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def begin(self, import_id: str, fmt: str, *, rows_total: int) -> ImportModel | None:
        """A new import in `receiving`, or None when one with this id exists."""
        now = self._clock()
        item = ImportModel(
            import_id=import_id,
            status=RECEIVING,
            format=fmt,
            rows_total=rows_total,
            created_at=now,
            updated_at=now,
            expires=now + KEEP,
        )
        try:
            item.save(condition=ImportModel.import_id.does_not_exist())
        except PutError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return item

    def abandon(self, import_id: str) -> None:
        """Forget an import still being received (its file had nothing to apply)."""
        try:
            ImportModel(import_id=import_id).delete(condition=ImportModel.status == RECEIVING)
        except DeleteError as exc:
            if not _conditional_failed(exc):
                raise

    def queued(
        self,
        import_id: str,
        *,
        rows_total: int,
        rows_valid: int,
        chunks: int,
        errors: Sequence[dict[str, Any]],
        error_count: int,
    ) -> ImportModel | None:
        """Every chunk is on the queue: record the totals and the upload's row errors.

        None when the import is no longer `receiving` (a concurrent upload of the same file finished it).
        """
        for _ in range(_ATTEMPTS):
            item = self.get(import_id)
            if item is None or item.status != RECEIVING:
                return None
            done = set(item.done_chunks or ())
            # The upload's errors come before those of rows the worker already applied.
            kept = [*errors, *(item.errors or [])][:MAX_ERRORS]
            status = DONE if len(done) >= chunks else RUNNING if done else QUEUED
            try:
                item.update(
                    actions=[
                        ImportModel.rows_total.set(rows_total),
                        ImportModel.rows_valid.set(rows_valid),
                        ImportModel.chunks.set(chunks),
                        ImportModel.errors.set(kept),
                        ImportModel.error_count.add(error_count),
                        ImportModel.status.set(status),
                        ImportModel.updated_at.set(self._clock()),
                    ],
                    # Unchanged since read: the status derives from the chunks done so far.
                    condition=(ImportModel.status == RECEIVING)
                    & _size_is(ImportModel.done_chunks, len(done))
                    & _size_is(ImportModel.errors, len(item.errors or [])),
                )
            except UpdateError as exc:
                if _conditional_failed(exc):
                    continue
                raise
            return item
        raise RuntimeError(f"import {import_id} kept changing; try again")

    def count_chunk(
        self,
        import_id: str,
        chunk: int,
        *,
        created: int,
        updated: int,
        failed: int,
        errors: Sequence[dict[str, Any]],
    ) -> ImportModel | None:
        """Add an applied chunk's counts once; None when the import is gone or the chunk was counted."""
        for _ in range(_ATTEMPTS):
            item = self.get(import_id)
            if item is None or chunk in (item.done_chunks or set()):
                return None
            stored = len(item.errors or [])
            kept = list(errors[: max(0, MAX_ERRORS - stored)])
            actions: list[Action] = [
                ImportModel.done_chunks.add({chunk}),
                ImportModel.rows_done.add(created + updated + failed),
                ImportModel.created.add(created),
                ImportModel.updated.add(updated),
                ImportModel.failed.add(failed),
                ImportModel.error_count.add(len(errors)),
                ImportModel.updated_at.set(self._clock()),
            ]
            condition = ~ImportModel.done_chunks.contains(chunk)
            if kept:
                actions.append(ImportModel.errors.set(ImportModel.errors.append(kept)))
                condition &= _size_is(ImportModel.errors, stored)
            try:
                item.update(actions=actions, condition=condition)
            except UpdateError as exc:
                if _conditional_failed(exc):
                    continue  # counted meanwhile, or errors appended: read again
                raise
            self._advance(item)
            return item
        raise RuntimeError(f"import {import_id} kept changing; try again")

    def _advance(self, item: ImportModel) -> None:
        """After a chunk: `queued` becomes `running`; the last chunk of a queued import makes it `done`."""
        if item.status not in (QUEUED, RUNNING):
            return  # still receiving: the upload decides when it finishes
        complete = len(item.done_chunks or ()) >= item.chunks
        status = DONE if complete else RUNNING
        if status == item.status:
            return
        try:
            item.update(
                actions=[ImportModel.status.set(status)],
                condition=ImportModel.status.is_in(QUEUED, RUNNING),
            )
        except UpdateError as exc:
            if not _conditional_failed(exc):
                raise
