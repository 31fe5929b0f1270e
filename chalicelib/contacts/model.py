"""The contact as a plain value: what conditions, templates and send checks read.

Storage maps its items to this shape; nothing here touches AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Fields every contact has; anything else lives in `fields` and is addressed as `fields.<name>`.
STANDARD_FIELDS = (
    "email",
    "external_id",
    "phone",
    "first_name",
    "last_name",
    "company",
    "language",
    "timezone",
    "category",
    "owner_email",
)


@dataclass(frozen=True)
class Contact:
    contact_id: str
    email: str | None = None
    external_id: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    language: str | None = None
    timezone: str | None = None
    category: str | None = None
    owner_email: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    # Channels the contact unsubscribed from ("email", "sms"): checked at send time.
    unsubscribed: frozenset[str] = frozenset()

    def get(self, path: str) -> Any:
        """The value of a standard field or of `fields.<name>`; None when absent."""
        if path.startswith("fields."):
            return self.fields.get(path.removeprefix("fields."))
        if path in STANDARD_FIELDS:
            return getattr(self, path)
        return None

    def template_context(self) -> dict[str, Any]:
        """What message templates may read: `{{ contact.first_name }}`, `{{ contact.fields.plan }}`."""
        ctx: dict[str, Any] = {name: getattr(self, name) for name in STANDARD_FIELDS}
        ctx["fields"] = dict(self.fields)
        ctx["tags"] = sorted(self.tags)
        return ctx


@dataclass(frozen=True)
class Facts:
    """Everything a condition may look at: the contact now, and the participant's engagement so far."""

    contact: Contact
    # (event, step id) pairs of this participant in this flow, e.g. ("opened", "welcome").
    engagement: frozenset[tuple[str, str]] = frozenset()
    forms_submitted: frozenset[str] = frozenset()
