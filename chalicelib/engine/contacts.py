"""Contact use cases: create, upsert, change and read contacts; define custom fields.

Bodies are checked whole by `contacts.input` before anything is written; a duplicate email address or
external id is a 409 that names the contact holding it. Websites and flow steps write contacts more
loosely (`loose_write`): a form's undefined fields are kept as text, not refused.
"""

from __future__ import annotations

from typing import Any

from chalicelib.contacts.input import (
    ContactWrite,
    FieldDefinition,
    FieldDefinitionIn,
    InputError,
    Problem,
    check_contact,
    coerce_field,
    normalise_email,
    normalise_phone,
    parse_model,
)
from chalicelib.contacts.model import STANDARD_FIELDS
from chalicelib.engine.errors import Conflict, NotFound, Unprocessable
from chalicelib.engine.ports import Runtime
from chalicelib.storage.contacts import DuplicateContact
from chalicelib.storage.models import ContactModel, FieldDefinitionModel


def invalid(exc: InputError, what: str = "contact") -> Unprocessable:
    return Unprocessable(
        f"invalid_{what}", f"the {what} has {len(exc.problems)} problem(s)", [p.as_dict() for p in exc.problems]
    )


def contact_view(item: ContactModel) -> dict[str, Any]:
    fields = item.fields.as_dict() if hasattr(item.fields, "as_dict") else dict(item.fields or {})
    return {
        "contact_id": item.contact_id,
        **{name: getattr(item, name) for name in STANDARD_FIELDS},
        "fields": fields,
        "tags": sorted(item.tags or ()),
        "lists": sorted(item.lists or ()),
        "consent": {"email": item.consent_email, "sms": item.consent_sms},
        "unsubscribed": sorted(item.unsubscribed or ()),
        "forms_submitted": sorted(item.forms_submitted or ()),
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


class ContactService:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def check(self, body: Any, *, partial: bool = False) -> ContactWrite:
        defs = self._rt.fields.definitions()
        try:
            return check_contact(
                body, defs, phone_region=self._rt.settings.phone_region, now=self._rt.clock(), partial=partial
            )
        except InputError as exc:
            if not any(p.code == "unknown_field" and p.path.startswith("/fields/") for p in exc.problems):
                raise invalid(exc) from None
        # A field defined a moment ago in another container: look again before refusing.
        try:
            return check_contact(
                body,
                self._rt.fields.definitions(fresh=True),
                phone_region=self._rt.settings.phone_region,
                now=self._rt.clock(),
                partial=partial,
            )
        except InputError as exc:
            raise invalid(exc) from None

    def create(self, body: Any) -> dict[str, Any]:
        write = self.check(body)
        try:
            return contact_view(self._rt.contacts.create(write))
        except DuplicateContact as exc:
            raise duplicate(exc) from None

    def upsert(self, body: Any) -> tuple[dict[str, Any], bool]:
        write = self.check(body)
        try:
            item, _, created = self._rt.contacts.upsert(write)
        except DuplicateContact as exc:
            raise duplicate(exc) from None
        return contact_view(item), created

    def patch(self, contact_id: str, body: Any) -> dict[str, Any]:
        write = self.check(body, partial=True)
        try:
            item = self._rt.contacts.update(contact_id, write)
        except DuplicateContact as exc:
            raise duplicate(exc) from None
        except InputError as exc:
            raise invalid(exc) from None
        if item is None:
            raise NotFound("contact_not_found", f"no contact {contact_id!r}")
        return contact_view(item)

    def get(self, contact_id: str) -> ContactModel:
        item = self._rt.contacts.get_item(contact_id)
        if item is None:
            raise NotFound("contact_not_found", f"no contact {contact_id!r}")
        return item

    # -- custom field definitions ----------------------------------------------------------------

    def define_field(self, body: Any) -> FieldDefinitionModel:
        try:
            spec: FieldDefinitionIn = parse_model(FieldDefinitionIn, body)
        except InputError as exc:
            raise invalid(exc, "field") from None
        if spec.name in STANDARD_FIELDS or spec.name in ("tags", "lists", "consent", "fields"):
            raise Unprocessable("reserved_name", f"{spec.name!r} is a standard contact field")
        options = [o.strip() for o in spec.options if o.strip()]
        if spec.type == "choice" and not options:
            raise Unprocessable("options_required", "a choice field needs `options`")
        if spec.type != "choice" and options:
            raise Unprocessable("options_not_allowed", "only choice fields have `options`")
        item = self._rt.fields.create(spec.name, label=spec.label, field_type=spec.type, options=options)
        if item is None:
            raise Conflict("field_exists", f"a custom field {spec.name!r} exists already")
        self._rt.fields.forget()
        return item


def duplicate(exc: DuplicateContact) -> Conflict:
    what = "email address" if exc.key.startswith("email:") else "external id"
    return Conflict(
        "duplicate_contact",
        f"another contact has this {what}",
        [{"path": "/email" if what == "email address" else "/external_id", "contact_id": exc.contact_id}],
    )


def field_view(item: FieldDefinitionModel) -> dict[str, Any]:
    return {
        "name": item.item_id,
        "type": item.field_type,
        "label": item.label,
        "options": list(item.options or []),
        "created_at": item.created_at.isoformat(),
    }


def loose_write(values: dict[str, Any], defs: dict[str, FieldDefinition], *, phone_region: str) -> ContactWrite:
    """A write from a website form or a flow step: standard fields are checked, defined custom fields
    typed, undefined ones kept as text. Raises InputError for a value that cannot be stored."""
    out: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    clear: list[str] = []
    problems: list[Problem] = []
    for raw_name, value in values.items():
        name = raw_name.removeprefix("fields.")
        path = f"/{raw_name}"
        try:
            if raw_name in ("email", "external_id"):
                continue
            if raw_name in STANDARD_FIELDS:
                text = "" if value is None else str(value).strip()
                if raw_name == "phone" and text:
                    text = normalise_phone(text, phone_region, path)
                elif raw_name == "owner_email" and text:
                    text = normalise_email(text, path)
                elif raw_name in ("language", "category"):
                    text = text.lower()
                out[raw_name] = text or None
            elif value is None or value == "":
                clear.append(name)
            elif name in defs:
                fields[name] = coerce_field(defs[name], value, path)
            else:
                fields[name] = value if isinstance(value, bool | int | float) else str(value)[:2048]
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return ContactWrite(values=out, fields=fields, clear_fields=clear)
