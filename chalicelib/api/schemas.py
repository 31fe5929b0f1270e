"""The bodies of the API that routes name as strings (`response="Contact"`), for /openapi.json.

Each model describes exactly what its handlers build or accept: response models list every key the
handler always writes as required (a value that may be absent from the answer has a default), and
leave objects open so that adding a key later is not a breaking change. schemathesis checks every
answer of the running app against them, so they cannot quietly drift from the handlers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import ConfigDict, Field

from chalicelib.access import Role

# Declared with the contact routes; named here for the routes elsewhere that answer contacts too.
from chalicelib.api.contacts import Contact as Contact
from chalicelib.api.contacts import ContactPage as ContactPage
from chalicelib.api.shared_schemas import FormChange as FormChange
from chalicelib.api.shared_schemas import FormRequest as FormRequest
from chalicelib.api.shared_schemas import ParticipantStatus
from chalicelib.api.shared_schemas import TraceEntry as TraceEntry
from chalicelib.flows.model import Flow as _FlowModel
from chalicelib.schema import Model

# --- shared -----------------------------------------------------------------------------------------


class ErrorBody(Model):
    code: str = Field(description="A stable, machine-readable code, e.g. `invalid_contact`.")
    message: str = Field(description="What went wrong, for a person.")
    details: list[Any] = Field(
        description="Every violation found, usually `{path, code, message}` with a JSON pointer `path`."
    )


class Error(Model):
    """Every error answer (4xx) of the API."""

    error: ErrorBody


class Health(Model):
    status: Literal["ok"]


class JsonSchema(Model):
    """A JSON Schema (draft 2020-12) document."""

    model_config = ConfigDict(defer_build=True, extra="allow")


class OpenApiDocument(Model):
    """This API's OpenAPI 3.1 description."""

    model_config = ConfigDict(defer_build=True, extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


# --- flows --------------------------------------------------------------------------------------------


class FlowDocument(_FlowModel):
    """A flow document: trigger, entry filter, re-entry rule, goals and steps (see docs/flows.md)."""


class FlowIssue(Model):
    path: str = Field(description="JSON pointer into the flow document.")
    code: str
    message: str
    severity: Literal["error", "warning"]


FlowStatus = Literal["draft", "active", "paused", "ended"]


class Flow(Model):
    id: str
    name: str
    status: FlowStatus
    version: int | None = Field(description="The live version; null until the flow is first activated.")
    created_at: dt.datetime
    updated_at: dt.datetime
    document: dict[str, Any] = Field(description="The draft flow document, as saved.")
    warnings: list[FlowIssue] = Field(
        default_factory=list, description="After a save or an activation: what may not work as meant."
    )
    participants_stopped: int = Field(0, description="After ending a flow: how many participants it stopped.")


class FlowList(Model):
    flows: list[Flow]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class FlowVersion(Model):
    version: int
    published_at: dt.datetime
    state_machine_arn: str
    document: dict[str, Any]


class VersionList(Model):
    versions: list[FlowVersion]


class ParticipantSummary(Model):
    participant_id: str = Field(description="`<contact_id>.<entry>`")
    contact_id: str
    entry: int = Field(description="1 for the contact's first entry into this flow, 2 for the next, …")
    version: int = Field(description="The flow version the participant runs on.")
    status: ParticipantStatus
    reason: str | None = Field(description="Why it left or failed.")
    current_step: str | None
    entered_at: dt.datetime
    updated_at: dt.datetime
    last_message: dict[str, Any] | None
    engagement: list[str] = Field(description="`opened:<step>`, `clicked:<step>`, …")


class Participant(ParticipantSummary):
    """A participant with the trace of why it went where it went."""

    trace: list[TraceEntry]
    execution_arn: str | None


class ParticipantList(Model):
    participants: list[ParticipantSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class EnrollmentRequest(Model):
    """Contacts to enroll, by id and/or email; at most 100 in all."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    contact_ids: list[str] = Field(default_factory=list, max_length=100)
    emails: list[str] = Field(default_factory=list, max_length=100)


EnrollmentOutcome = Literal[
    "enrolled", "already_enrolled", "reentry_blocked", "filtered_out", "flow_not_active", "contact_not_found"
]


class EnrollmentResult(Model):
    """One contact's outcome; it carries the `contact_id` or the `email` it was asked for."""

    contact_id: Any = Field(None, description="The contact id as given.")
    email: Any = Field(None, description="The email as given.")
    outcome: EnrollmentOutcome
    participant_id: str | None
    detail: str


class EnrollmentResults(Model):
    results: list[EnrollmentResult]


# --- forms and the public routes ----------------------------------------------------------------------


class Form(Model):
    key: str
    name: str
    owner_email: str | None
    submit_url: str = Field(description="Where websites post submissions, relative to the API.")


class FormList(Model):
    forms: list[Form]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class FormSubmission(Model):
    """The visitor's answers. `email` is required; other text fields are stored on the contact (custom
    fields by their definitions); `_hp` is the honeypot that bots fill."""

    model_config = ConfigDict(
        defer_build=True,
        extra="allow",
        json_schema_extra={"additionalProperties": {"type": ["string", "number", "boolean"]}},
    )

    email: str


class SubmissionResult(Model):
    contact_id: str | None = Field(description="Null when the submission was dropped as spam.")
    created: bool
    flows: list[str] = Field(description="The active flows this form triggers.")
    already_enrolled: list[str] = Field(description="Those of `flows` the contact is in already.")


class Unsubscribed(Model):
    contact_id: str
    channel: Literal["email", "sms"]
    unsubscribed: Literal[True]


# --- API keys -----------------------------------------------------------------------------------------


class KeyRequest(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="Who or what uses the key.")
    role: Role


class Key(Model):
    key_id: str
    name: str
    role: Role
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class NewKey(Key):
    key: str = Field(description="The key for `Authorization: Bearer …`. Shown this once; only a hash is kept.")


class KeyList(Model):
    keys: list[Key]
