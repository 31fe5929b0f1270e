"""PynamoDB models of every Floe table.

Table names carry the stack's prefix (`floe-<tenant>-`), so models are bound to the settings once by
`bind()` instead of at import time; `infra/` declares the same tables for deployment and
`create_tables()` makes them in moto.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    NumberSetAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model


class _Base(Model):
    class Meta:
        abstract = True
        table_name = ""
        region = "eu-west-1"
        billing_mode = "PAY_PER_REQUEST"


class ContactModel(_Base):
    """A contact. Its changes stream to the change worker (segment index, timeline, events)."""

    class Meta(_Base.Meta):
        suffix = "contacts"
        stream_view_type = "NEW_AND_OLD_IMAGES"

    contact_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(null=True)
    external_id = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    first_name = UnicodeAttribute(null=True)
    last_name = UnicodeAttribute(null=True)
    company = UnicodeAttribute(null=True)
    language = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    category = UnicodeAttribute(null=True)
    owner_email = UnicodeAttribute(null=True)
    # A DynamoDB map, so one custom field can be set without reading the others.
    fields = MapAttribute(default=dict)  # type: ignore[var-annotated]
    tags = UnicodeSetAttribute(default=set)
    lists = UnicodeSetAttribute(default=set)
    unsubscribed = UnicodeSetAttribute(default=set)
    forms_submitted = UnicodeSetAttribute(default=set)
    # Proof of consent per channel: {"status", "source", "at"}.
    consent_email = JSONAttribute(null=True)
    consent_sms = JSONAttribute(null=True)
    # The last form post, so each submission (not only the first per form) reaches the timeline.
    last_submission = JSONAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class ContactKeyModel(_Base):
    """`email:<address>` or `ext:<external id>` → contact: unique, and read consistently (unlike an index)."""

    class Meta(_Base.Meta):
        suffix = "contact-keys"

    key = UnicodeAttribute(hash_key=True)
    contact_id = UnicodeAttribute()
    # When a create claimed the key, before writing its contact: a claim whose contact never followed
    # (the writer died in between) is taken over once it is older than any request can run.
    claimed_at = UTCDateTimeAttribute(null=True)


class SegmentIndexModel(_Base):
    """One item per (indexed value, contact): `tag:vip`, `list:news`, `form:demo`, `field:category=lead`,
    `field:fields.score#5` (the entries of `contacts.segments.entries`).

    Written by the change worker from the contacts stream; a segment over an indexed condition is a
    query on one partition, so its cost follows the segment's size, not the table's.
    """

    class Meta(_Base.Meta):
        suffix = "segment-index"

    entry = UnicodeAttribute(hash_key=True)
    contact_id = UnicodeAttribute(range_key=True)


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


class ParticipantByContact(GlobalSecondaryIndex["ParticipantModel"]):
    """Every flow entry of a contact (erasure, export)."""

    class Meta:
        index_name = "by_contact"
        projection = KeysOnlyProjection()

    contact_id = UnicodeAttribute(hash_key=True)


class ParticipantModel(_Base):
    """One entry of a contact into a flow. `participant_id` is `<contact_id>.<entry>`."""

    class Meta(_Base.Meta):
        suffix = "participants"
        stream_view_type = "NEW_AND_OLD_IMAGES"

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
    by_contact = ParticipantByContact()


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


class TimelineModel(_Base):
    """What happened to a contact, newest last in key order (`<iso time>#<event id>`)."""

    class Meta(_Base.Meta):
        suffix = "timeline"

    contact_id = UnicodeAttribute(hash_key=True)
    at_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    summary = UnicodeAttribute()
    detail = JSONAttribute(default=dict)


class CrmObjectModel(_Base):
    """An activity, sale or request of a contact. Its changes stream like contacts do."""

    class Meta(_Base.Meta):
        suffix = "crm"
        stream_view_type = "NEW_AND_OLD_IMAGES"

    contact_id = UnicodeAttribute(hash_key=True)
    object_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    data = JSONAttribute(default=dict)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class ImportModel(_Base):
    """A bulk import: its counters grow as chunks are applied; `done_chunks` makes each count once."""

    class Meta(_Base.Meta):
        suffix = "imports"

    import_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute()
    format = UnicodeAttribute()
    rows_total = NumberAttribute(default=0)
    rows_valid = NumberAttribute(default=0)
    rows_done = NumberAttribute(default=0)
    created = NumberAttribute(default=0)
    updated = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    chunks = NumberAttribute(default=0)
    done_chunks = NumberSetAttribute(default=set)
    errors = ListAttribute(default=list)  # type: ignore[var-annotated]
    # Every row error, while `errors` keeps only the first ones.
    error_count = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


class SuppressionModel(_Base):
    """A hashed address that must not be mailed again (kept after erasure; the address itself is gone)."""

    class Meta(_Base.Meta):
        suffix = "suppressions"

    email_hash = UnicodeAttribute(hash_key=True)
    reason = UnicodeAttribute()
    at = UTCDateTimeAttribute()


class _CatalogBase(_Base):
    """Small marketer-owned documents sharing one table, listed by `kind`."""

    class Meta(_Base.Meta):
        abstract = True
        suffix = "catalog"

    kind = UnicodeAttribute(hash_key=True)
    item_id = UnicodeAttribute(range_key=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class SegmentModel(_CatalogBase):
    class Meta(_CatalogBase.Meta):
        abstract = False

    name = UnicodeAttribute()
    condition = JSONAttribute()


class FieldDefinitionModel(_CatalogBase):
    """A typed custom field: text, number, date, boolean or choice (with its options)."""

    class Meta(_CatalogBase.Meta):
        abstract = False

    label = UnicodeAttribute(null=True)
    field_type = UnicodeAttribute()
    options = ListAttribute(default=list)  # type: ignore[var-annotated]


class TemplateModel(_CatalogBase):
    """Reusable message content (email or SMS) that editors maintain apart from flows."""

    class Meta(_CatalogBase.Meta):
        abstract = False

    name = UnicodeAttribute()
    channel = UnicodeAttribute()
    content = JSONAttribute()


class ApiKeyModel(_Base):
    """A marketer API key: only the SHA-256 of its secret is stored."""

    class Meta(_Base.Meta):
        suffix = "api-keys"

    key_id = UnicodeAttribute(hash_key=True)
    secret_hash = UnicodeAttribute()
    role = UnicodeAttribute()
    name = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)


MODELS: tuple[type[_Base], ...] = (
    ContactModel,
    ContactKeyModel,
    SegmentIndexModel,
    FlowModel,
    FlowVersionModel,
    ParticipantModel,
    ClaimModel,
    ParkedWaitModel,
    FormModel,
    TimelineModel,
    CrmObjectModel,
    ImportModel,
    SuppressionModel,
    SegmentModel,
    FieldDefinitionModel,
    TemplateModel,
    ApiKeyModel,
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
        # Every model would otherwise build its own botocore session and client (loading the service
        # description each time): one shared connection makes a cold start and a test's setup cheap.
        table = model._get_connection()
        with contextlib.suppress(ValueError):  # the catalog's models share one table
            _connection.add_meta_table(table.connection.get_meta_table(table.table_name))
        table.connection = _connection


def create_tables() -> None:
    for model in MODELS:
        if not model.exists():
            model.create_table(wait=False)


# The tables whose changes the change worker reads (DynamoDB streams in AWS, polled locally).
STREAMED: tuple[type[_Base], ...] = (ContactModel, CrmObjectModel, ParticipantModel)


def table_definitions() -> dict[str, dict[str, Any]]:
    """Key schemas and indexes of every table, for checking `infra/` against the models."""
    out: dict[str, dict[str, Any]] = {}
    for model in MODELS:
        out[model.Meta.suffix] = dict(model._get_schema())  # type: ignore[attr-defined]
    return out
