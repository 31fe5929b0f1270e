"""The one place where stored changes become events: contacts, CRM objects and participants.

DynamoDB streams deliver every change of the streamed tables (in AWS to this worker's Lambda; in the
local stack and the tests a pump reads them from moto). Routes and steps only write; what follows
from a write — the segment index, the contact's timeline, and later the triggers that react to a
tag added or a sale created — is derived here from the old and new images, once per change.
Handlers are idempotent: a redelivered change writes the same index and timeline items again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from chalicelib.engine.ports import Runtime
from chalicelib.logs import logger
from chalicelib.storage.models import ContactModel, CrmObjectModel, ParticipantModel


@dataclass(frozen=True)
class Change:
    """One stream record: which table, what it was and what it is, when, and a stable id."""

    table: str
    old: Any | None
    new: Any | None
    at: dt.datetime
    event_id: str


_MODELS: dict[str, type[Any]] = {
    "contacts": ContactModel,
    "crm": CrmObjectModel,
    "participants": ParticipantModel,
}


def decode(record: dict[str, Any], table_prefix: str) -> Change | None:
    """A Lambda DynamoDB stream record as a Change; None for a table this worker does not follow."""
    arn = str(record.get("eventSourceARN", ""))
    table = arn.split(":table/", 1)[-1].split("/stream/", 1)[0]
    suffix = table.removeprefix(table_prefix)
    model = _MODELS.get(suffix)
    if model is None:
        return None
    body = record.get("dynamodb") or {}
    old = model.from_raw_data(body["OldImage"]) if body.get("OldImage") else None
    new = model.from_raw_data(body["NewImage"]) if body.get("NewImage") else None
    stamp = body.get("ApproximateCreationDateTime")
    at = dt.datetime.fromtimestamp(float(stamp), dt.UTC) if stamp else dt.datetime.now(dt.UTC)
    return Change(suffix, old, new, at, str(body.get("SequenceNumber") or record.get("eventID")))


class ChangeWorker:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def handle(self, record: dict[str, Any]) -> None:
        change = decode(record, self._rt.settings.table_prefix)
        if change is None:
            logger.warning("change from an unknown table", extra={"source": record.get("eventSourceARN")})
            return
        from chalicelib.engine.segments import index_change
        from chalicelib.engine.timeline import timeline_change

        if change.table == "contacts":
            index_change(self._rt, change)
        timeline_change(self._rt, change)
