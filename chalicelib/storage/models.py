"""PynamoDB models of every Floe table.

Table names carry the stack's prefix (`floe-<tenant>-`), so models are bound to the settings once by
`bind()` instead of at import time; `infra/` declares the same tables for deployment and
`create_tables()` makes them in moto.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model


class _Base(Model):
    class Meta:
        abstract = True
        table_name = ""
        region = "eu-west-1"
        billing_mode = "PAY_PER_REQUEST"


class ContactByEmail(GlobalSecondaryIndex["ContactModel"]):
    class Meta:
        index_name = "by_email"
        projection = AllProjection()

    email = UnicodeAttribute(hash_key=True)


class ContactModel(_Base):
    class Meta(_Base.Meta):
        suffix = "contacts"

    contact_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    first_name = UnicodeAttribute(null=True)
    last_name = UnicodeAttribute(null=True)
    company = UnicodeAttribute(null=True)
    language = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    owner_email = UnicodeAttribute(null=True)
    fields = JSONAttribute(default=dict)
    tags = UnicodeSetAttribute(default=set)
    lists = UnicodeSetAttribute(default=set)
    unsubscribed = UnicodeSetAttribute(default=set)
    forms_submitted = UnicodeSetAttribute(default=set)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    by_email = ContactByEmail()


class FlowByTrigger(GlobalSecondaryIndex["FlowModel"]):
    """Sparse: only active flows carry `trigger_key`, so a lookup finds exactly the listening flows."""

    class Meta:
        index_name = "by_trigger"
        projection = AllProjection()

    trigger_key = UnicodeAttribute(hash_key=True)


class FlowModel(_Base):
    class Meta(_Base.Meta):
        suffix = "flows"

    flow_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    status = UnicodeAttribute(default="draft")
    draft = JSONAttribute()
    current_version = NumberAttribute(default=0)
    trigger_key = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    by_trigger = FlowByTrigger()


class FlowVersionModel(_Base):
    class Meta(_Base.Meta):
        suffix = "flow-versions"

    flow_id = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(range_key=True)
    document = JSONAttribute()
    state_machine_arn = UnicodeAttribute()
    published_at = UTCDateTimeAttribute()


class ParticipantModel(_Base):
    """One entry of a contact into a flow. `participant_id` is `<contact_id>.<entry>`."""

    class Meta(_Base.Meta):
        suffix = "participants"

    flow_id = UnicodeAttribute(hash_key=True)
    participant_id = UnicodeAttribute(range_key=True)
    contact_id = UnicodeAttribute()
    entry = NumberAttribute()
    version = NumberAttribute()
    execution_name = UnicodeAttribute()
    execution_arn = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    current_step = UnicodeAttribute(null=True)
    entered_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    last_message = JSONAttribute(null=True)
    engagement = UnicodeSetAttribute(default=set)
    trace = ListAttribute(default=list)  # type: ignore[var-annotated]


class ClaimModel(_Base):
    """The send claim: one item per (participant, step, visit); its existence means "do not send again"."""

    class Meta(_Base.Meta):
        suffix = "claims"

    claim_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute()
    channel = UnicodeAttribute()
    message_id = UnicodeAttribute(null=True)
    detail = UnicodeAttribute(null=True)
    claimed_at = UTCDateTimeAttribute()


class ParkedWaitModel(_Base):
    """A `wait_for` task token parked until its event happens. Keyed by contact so events find it."""

    class Meta(_Base.Meta):
        suffix = "waits"

    contact_id = UnicodeAttribute(hash_key=True)
    wait_key = UnicodeAttribute(range_key=True)  # <event>#<step or form>#<flow_id>#<participant_id>
    task_token = UnicodeAttribute()
    parked_at = UTCDateTimeAttribute()


class FormModel(_Base):
    class Meta(_Base.Meta):
        suffix = "forms"

    form_key = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    # The salesperson new contacts from this form are assigned to (set by the marketer, never the visitor).
    owner_email = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()


MODELS: tuple[type[_Base], ...] = (
    ContactModel,
    FlowModel,
    FlowVersionModel,
    ParticipantModel,
    ClaimModel,
    ParkedWaitModel,
    FormModel,
)


_connection: Connection | None = None


def connection() -> Connection:
    """The connection for transactions across tables (bound like the models)."""
    if _connection is None:
        raise RuntimeError("storage.models.bind() has not been called")
    return _connection


def bind(*, table_prefix: str, region: str, host: str | None) -> None:
    """Point every model at this stack's tables (and at moto's server in the local stack)."""
    global _connection
    _connection = Connection(region=region, host=host)
    for model in MODELS:
        model.Meta.table_name = table_prefix + model.Meta.suffix  # type: ignore[attr-defined]
        model.Meta.region = region
        model.Meta.host = host  # type: ignore[attr-defined]
        # PynamoDB caches the connection with the old table name and endpoint.
        model._connection = None


def create_tables() -> None:
    for model in MODELS:
        if not model.exists():
            model.create_table(wait=False)


def table_definitions() -> dict[str, dict[str, Any]]:
    """Key schemas and indexes of every table, for checking `infra/` against the models."""
    out: dict[str, dict[str, Any]] = {}
    for model in MODELS:
        out[model.Meta.suffix] = dict(model._get_schema())  # type: ignore[attr-defined]
    return out
