"""The contacts repository: create, upsert, change and erase contacts with their unique keys.

Uniqueness of email addresses and external ids is kept by key items (`contact-keys`) written in the
same transaction as the contact, so two requests racing to create one address collide on one key.
A contact created from an address gets an id derived from it; upserting that address again is then a
single conditional update (the common case of a re-submitted form or a re-uploaded import).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.contacts.input import ContactWrite
from chalicelib.storage import models
from chalicelib.storage.models import ContactKeyModel, ContactModel, SuppressionModel
from chalicelib.storage.paging import Page, decode_cursor, encode_cursor
from chalicelib.storage.time import Clock, utcnow

_NAMESPACE = uuid.UUID("6f1c8a52-4a5e-4c1e-9a44-0f10e5c0f10e")
# Standard attributes a write may set directly (keys are handled apart).
_PLAIN = ("phone", "first_name", "last_name", "company", "language", "timezone", "category", "owner_email")
_SET_ATTRS = ("tags", "lists")


class DuplicateContact(Exception):
    """Another contact has this email address or external id."""

    def __init__(self, key: str, contact_id: str | None) -> None:
        super().__init__(key)
        self.key = key
        self.contact_id = contact_id


def email_key(email: str) -> str:
    return "email:" + email.casefold()


def external_key(external_id: str) -> str:
    return "ext:" + external_id


def suppression_hash(email: str) -> str:
    return hashlib.sha256(email.casefold().encode()).hexdigest()


def derived_id(email: str) -> str:
    return "ct_" + uuid.uuid5(_NAMESPACE, email.casefold()).hex[:20]


def _conditional_failed(exc: UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def _cancelled_at(exc: TransactWriteError) -> list[int]:
    """Indexes of the transaction items whose condition failed."""
    if exc.cause_response_code != "TransactionCanceledException":
        raise exc
    return [i for i, r in enumerate(exc.cancellation_reasons or []) if r is not None and r.code != "None"]


class Contacts:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    # -- reads -----------------------------------------------------------------------------------

    def get_item(self, contact_id: str) -> ContactModel | None:
        try:
            return ContactModel.get(contact_id, consistent_read=True)
        except DoesNotExist:
            return None

    def owner_of(self, key: str) -> str | None:
        try:
            return str(ContactKeyModel.get(key, consistent_read=True).contact_id)
        except DoesNotExist:
            return None

    def find_by_email(self, email: str) -> ContactModel | None:
        contact_id = self.owner_of(email_key(email))
        return self.get_item(contact_id) if contact_id else None

    def find_by_external_id(self, external_id: str) -> ContactModel | None:
        contact_id = self.owner_of(external_key(external_id))
        return self.get_item(contact_id) if contact_id else None

    def page(self, *, cursor: str | None, limit: int, filter_condition: Condition | None = None) -> Page[ContactModel]:
        result = ContactModel.scan(
            filter_condition=filter_condition, limit=limit, last_evaluated_key=decode_cursor(cursor)
        )
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def all(self) -> Iterator[ContactModel]:
        return iter(ContactModel.scan())

    # -- writes ----------------------------------------------------------------------------------

    def create(self, write: ContactWrite, *, form: str | None = None) -> ContactModel:
        """A new contact; raises DuplicateContact when its address or external id is taken."""
        now = self._clock()
        email, external = write.email, write.external_id
        contact_id = derived_id(email) if email else "ct_" + uuid.uuid4().hex[:20]
        suppressed = False
        for _ in range(3):
            item = ContactModel(contact_id=contact_id, created_at=now, updated_at=now, fields={})
            self._fill(item, write, suppressed=suppressed)
            if form:
                item.forms_submitted = {form}
            keys = [k for k in (email and email_key(email), external and external_key(external)) if k]
            try:
                with TransactWrite(connection=models.connection()) as tx:
                    tx.save(item, condition=ContactModel.contact_id.does_not_exist())
                    for key in keys:
                        tx.save(
                            ContactKeyModel(key=key, contact_id=contact_id),
                            condition=ContactKeyModel.key.does_not_exist(),
                        )
                    if email and not suppressed:
                        # An erased or suppressed address must not come back mailable by mistake.
                        tx.condition_check(
                            SuppressionModel,
                            suppression_hash(email),
                            condition=SuppressionModel.email_hash.does_not_exist(),
                        )
                return item
            except TransactWriteError as exc:
                failed = _cancelled_at(exc)
            if 0 in failed:
                # The derived id belongs to a contact whose address changed since: take a fresh one.
                contact_id = "ct_" + uuid.uuid4().hex[:20]
            for index, key in enumerate(keys, start=1):
                if index in failed:
                    raise DuplicateContact(key, self.owner_of(key))
            if len(keys) + 1 in failed:
                suppressed = True
        raise RuntimeError("could not create the contact")

    def upsert(
        self, write: ContactWrite, *, form: str | None = None, initial: dict[str, Any] | None = None
    ) -> tuple[ContactModel | None, str, bool]:
        """Create or change the contact identified by external id, else by email: (item?, id, created).

        `initial` values are set only on a contact this call creates. The item is returned when it
        was read or made; the fast path (an unchanged address) does not read it.
        """
        external, email = write.external_id, write.email
        contact_id = None
        if external:
            contact_id = self.owner_of(external_key(external))
        elif email and self._update_if(derived_id(email), write, ContactModel.email == email, form=form):
            return None, derived_id(email), False
        if contact_id is None and email:
            contact_id = self.owner_of(email_key(email))
        if contact_id is None:
            try:
                first = ContactWrite(**{**vars(write), "values": {**(initial or {}), **write.values}})
                item = self.create(first, form=form)
                return item, item.contact_id, True
            except DuplicateContact as exc:
                # Someone created it meanwhile: this write becomes an update of theirs.
                if exc.contact_id is None:
                    raise
                contact_id = exc.contact_id
        updated = self.update(contact_id, write, form=form)
        if updated is None:
            raise RuntimeError(f"contact {contact_id} vanished during the upsert")
        return updated, contact_id, False

    def update(self, contact_id: str, write: ContactWrite, *, form: str | None = None) -> ContactModel | None:
        """Apply a checked change; None when there is no such contact. Raises DuplicateContact."""
        for _ in range(5):
            current = self.get_item(contact_id)
            if current is None:
                return None
            key_moves = self._key_moves(current, write)
            actions = self._actions(write, current=current, form=form)
            guard = ContactModel.updated_at == current.updated_at
            if not key_moves:
                try:
                    current.update(actions=actions, condition=guard)
                    return current
                except UpdateError as exc:
                    if not _conditional_failed(exc):
                        raise
                    continue
            try:
                with TransactWrite(connection=models.connection()) as tx:
                    tx.update(current, actions=actions, condition=guard)
                    for old, new in key_moves:
                        if old:
                            tx.delete(ContactKeyModel(key=old), condition=ContactKeyModel.contact_id == contact_id)
                        if new:
                            tx.save(
                                ContactKeyModel(key=new, contact_id=contact_id),
                                condition=ContactKeyModel.key.does_not_exist(),
                            )
            except TransactWriteError as exc:
                failed = _cancelled_at(exc)
                if 0 in failed:
                    continue  # changed meanwhile: read again
                news = [new for _, new in key_moves]
                for key in news:
                    if key and self.owner_of(key) not in (None, contact_id):
                        raise DuplicateContact(key, self.owner_of(key)) from None
                continue
            return self.get_item(contact_id)
        raise RuntimeError(f"contact {contact_id} kept changing; try again")

    def _update_if(self, contact_id: str, write: ContactWrite, condition: Condition, *, form: str | None) -> bool:
        if _needs_read(write):
            return False
        item = ContactModel(contact_id=contact_id)
        try:
            item.update(actions=self._actions(write, current=None, form=form), condition=condition)
        except UpdateError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _key_moves(self, current: ContactModel, write: ContactWrite) -> list[tuple[str | None, str | None]]:
        moves: list[tuple[str | None, str | None]] = []
        if "email" in write.values and write.email != current.email:
            moves.append((current.email and email_key(current.email), write.email and email_key(write.email)))
        if "external_id" in write.values and write.external_id != current.external_id:
            moves.append(
                (
                    current.external_id and external_key(current.external_id),
                    write.external_id and external_key(write.external_id),
                )
            )
        return moves

    def _fill(self, item: ContactModel, write: ContactWrite, *, suppressed: bool) -> None:
        for name, value in write.values.items():
            setattr(item, name, value)
        item.fields = dict(write.fields)
        item.tags = set(write.tags or ()) | set(write.add_tags or ())
        item.lists = set(write.lists or ()) | set(write.add_lists or ())
        unsubscribed: set[str] = set()
        for channel, consent in (write.consent or {}).items():
            setattr(item, f"consent_{channel}", consent)
            if consent["status"] != "granted":
                unsubscribed.add(channel)
        if suppressed:
            unsubscribed.add("email")
        item.unsubscribed = unsubscribed

    def _actions(self, write: ContactWrite, *, current: ContactModel | None, form: str | None) -> list[Action]:
        """The update of `write`; with `current`, sets are computed whole (so adds and removes can mix)."""
        actions: list[Action] = [ContactModel.updated_at.set(self._clock())]
        for name, value in write.values.items():
            if name in ("email", "external_id") and current is None:
                continue
            attr = getattr(ContactModel, name)
            actions.append(attr.set(value) if value not in (None, "") else attr.remove())
        for name, value in write.fields.items():
            actions.append(ContactModel.fields[name].set(value))
        for name in write.clear_fields:
            actions.append(ContactModel.fields[name].remove())
        for attr_name in _SET_ATTRS:
            replace = getattr(write, attr_name)
            add = set(getattr(write, f"add_{attr_name}") or ())
            remove = set(getattr(write, f"remove_{attr_name}") or ())
            attr = getattr(ContactModel, attr_name)
            if current is not None and (replace is not None or add or remove):
                base = set(replace) if replace is not None else set(getattr(current, attr_name) or ())
                final = (base | add) - remove
                if final != set(getattr(current, attr_name) or ()):
                    actions.append(attr.set(final) if final else attr.remove())
            elif replace is not None:
                actions.append(attr.set(set(replace) | add) if set(replace) | add else attr.remove())
            elif add:
                actions.append(attr.add(add))
            elif remove:
                actions.append(attr.delete(remove))
        if write.consent:
            for channel, consent in write.consent.items():
                actions.append(getattr(ContactModel, f"consent_{channel}").set(consent))
            mail_off = {c for c, v in write.consent.items() if v["status"] != "granted"}
            mail_on = {c for c, v in write.consent.items() if v["status"] == "granted"}
            if current is not None:
                final = (set(current.unsubscribed or ()) | mail_off) - mail_on
                actions.append(ContactModel.unsubscribed.set(final) if final else ContactModel.unsubscribed.remove())
            elif mail_off:
                actions.append(ContactModel.unsubscribed.add(mail_off))
            elif mail_on:
                actions.append(ContactModel.unsubscribed.delete(mail_on))
        if form:
            actions.append(ContactModel.forms_submitted.add({form}))
            actions.append(ContactModel.last_submission.set({"form": form, "at": self._clock().isoformat()}))
        return actions

    def unsubscribe(self, contact_id: str, channel: str, *, source: str = "unsubscribe link") -> bool:
        consent = {"status": "withdrawn", "source": source, "at": self._clock().isoformat()}
        item = ContactModel(contact_id=contact_id)
        try:
            item.update(
                actions=[
                    ContactModel.unsubscribed.add({channel}),
                    getattr(ContactModel, f"consent_{channel}").set(consent),
                    ContactModel.updated_at.set(self._clock()),
                ],
                condition=ContactModel.contact_id.exists(),
            )
        except UpdateError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def suppress(self, email: str, reason: str) -> None:
        SuppressionModel(email_hash=suppression_hash(email), reason=reason, at=self._clock()).save()

    def delete(self, item: ContactModel) -> None:
        """Remove the contact and its keys in one transaction (the rest of an erasure is the engine's)."""
        with TransactWrite(connection=models.connection()) as tx:
            tx.delete(item)
            for key in (item.email and email_key(item.email), item.external_id and external_key(item.external_id)):
                if key:
                    tx.delete(ContactKeyModel(key=key), condition=ContactKeyModel.contact_id == item.contact_id)


def _needs_read(write: ContactWrite) -> bool:
    """A change the fast path cannot express without the current item."""
    mixed_sets = any(
        (getattr(write, f"add_{n}") and getattr(write, f"remove_{n}"))
        or (getattr(write, n) is not None and getattr(write, f"remove_{n}"))
        for n in _SET_ATTRS
    )
    consent = write.consent or {}
    mixed_consent = len({v["status"] == "granted" for v in consent.values()}) > 1
    return bool(mixed_sets or mixed_consent or "external_id" in write.values)


def values_of(item: ContactModel) -> dict[str, Any]:
    return {name: getattr(item, name) for name in ("email", "external_id", *_PLAIN)}
