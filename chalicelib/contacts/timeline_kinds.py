"""The kinds of entry a contact's timeline holds."""

from __future__ import annotations

from typing import Literal, get_args

TimelineKind = Literal[
    "contact_created",
    "field_changed",
    "tag_added",
    "tag_removed",
    "list_added",
    "list_removed",
    "consent_changed",
    "unsubscribed",
    "resubscribed",
    "form_submitted",
    "flow_entered",
    "flow_left",
    "message_sent",
    "message_skipped",
    "waiting",
    "branch",
    "flow_step",
    "opened",
    "clicked",
    "activity_created",
    "activity_changed",
    "sale_created",
    "sale_changed",
    "request_created",
    "request_changed",
]

KINDS: tuple[str, ...] = get_args(TimelineKind)
