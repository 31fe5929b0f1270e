"""The answers of the contact-record routes (CRM objects, timeline, erasure, export), for /openapi.json.

Request bodies are the models of `contacts.crm`; these describe exactly what `engine.records` builds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from chalicelib.api.contacts import Contact, ContactConsent
from chalicelib.api.shared_schemas import TraceEntry
from chalicelib.contacts.crm import ActivityType, Priority, RequestStatus, SaleStatus
from chalicelib.contacts.timeline_kinds import TimelineKind
from chalicelib.schema import Model

CURSOR = Field(description="Pass as `cursor` for the next page; null on the last page.")


class _CrmObject(Model):
    object_id: str = Field(description="Starts with `act_`, `sale_` or `req_`, then the time it was made.")
    contact_id: str
    owner_email: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class Activity(_CrmObject):
    """A follow-up activity of a contact."""

    kind: Literal["activity"]
    type: ActivityType
    subject: str
    due_date: dt.date | None
    done: bool
    notes: str | None


class Sale(_CrmObject):
    kind: Literal["sale"]
    amount: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$", description="A decimal string, e.g. `1250.00`.")
    currency: str = Field(description="ISO 4217.")
    product: str | None
    status: SaleStatus
    expected_close_date: dt.date | None
    close_date: dt.date | None
    notes: str | None


class ServiceRequest(_CrmObject):
    """A service request of a contact."""

    kind: Literal["request"]
    subject: str
    status: RequestStatus
    category: str | None
    priority: Priority
    description: str | None


class ActivityPage(Model):
    activities: list[Activity]
    next_cursor: str | None = CURSOR


class SalePage(Model):
    sales: list[Sale]
    next_cursor: str | None = CURSOR


class ServiceRequestPage(Model):
    requests: list[ServiceRequest]
    next_cursor: str | None = CURSOR


class TimelineItem(Model):
    id: str = Field(description="Stable: the same event always has the same id.")
    at: dt.datetime
    kind: TimelineKind
    summary: str = Field(description="One line for a person.")
    detail: dict[str, Any] = Field(description="What the line says, as data (fields, old and new values, ids).")


class TimelinePage(Model):
    timeline: list[TimelineItem] = Field(description="Newest first.")
    next_cursor: str | None = CURSOR


class ErasureCounts(Model):
    contact: int = Field(description="1 when the contact itself was deleted by this request.")
    participants: int = Field(description="Flow entries deleted.")
    executions_stopped: int = Field(description="Running flow executions stopped.")
    waits: int = Field(description="Parked waits (for an open, a click, a form) deleted.")
    crm_objects: int
    timeline_items: int


class Erasure(Model):
    """What an erasure removed. The address is kept only as a one-way hash, so it is not mailed again."""

    contact_id: str
    erased_at: dt.datetime
    email_suppressed: bool = Field(description="Whether the hash of the address was kept as a suppression.")
    removed: ErasureCounts


class FlowParticipation(Model):
    flow_id: str
    flow_name: str | None
    participant_id: str
    entry: int
    version: int
    status: str
    reason: str | None
    current_step: str | None
    entered_at: dt.datetime
    updated_at: dt.datetime
    last_message: dict[str, Any] | None
    engagement: list[str]
    trace: list[TraceEntry]


class ParkedWait(Model):
    event: str
    target: str
    flow_id: str
    participant_id: str
    parked_at: dt.datetime


class ContactExport(Model):
    """Everything stored about a contact."""

    contact_id: str
    exported_at: dt.datetime
    contact: Contact
    consent: ContactConsent = Field(description="The proof of consent per channel: status, source and time.")
    last_submission: dict[str, Any] | None
    flows: list[FlowParticipation] = Field(description="Every flow entry, with its trace.")
    waiting_for: list[ParkedWait]
    activities: list[Activity]
    sales: list[Sale]
    requests: list[ServiceRequest]
    timeline: list[TimelineItem] = Field(description="Newest first.")
