"""The contacts repository: create, upsert, change and erase contacts with their unique keys.

Uniqueness of email addresses and external ids is kept by key items (`contact-keys`): a create claims
them before it writes the contact, a change of address moves them in the same transaction as the
contact, so two requests racing for one address collide on one key.
A contact created from an address gets an id derived from it; upserting that address again is then a
single conditional update (the common case of a re-submitted form or a re-uploaded import).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.contacts.input import ContactWrite, InputError, Problem
from chalicelib.storage import models
from chalicelib.storage.models import ContactKeyModel, ContactModel, SuppressionModel
from chalicelib.storage.paging import InvalidCursor, Page, decode_cursor, encode_cursor
from chalicelib.storage.time import Clock, utcnow

_NAMESPACE = uuid.UUID("6f1c8a52-4a5e-4c1e-9a44-0f10e5c0f10e")
_SET_ATTRS = ("tags", "lists")
# A key claimed this long ago whose contact was never written was left by a writer that died between the
# two writes: requests and workers time out long before.
STALE_CLAIM = dt.timedelta(minutes=5)


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


def _random_id() -> str:
    return "ct_" + uuid.uuid4().hex[:20]


def _conditional_failed(exc: UpdateError | PutError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


# PynamoDB sends a transaction's items grouped by kind, in this order (not in the order they were added).
_KINDS = ("check", "delete", "put", "update")


class _Transaction:
    """A write transaction whose items carry labels, so a cancelled one says which conditions failed."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str, Callable[[TransactWrite], None]]] = []

    def delete(self, label: str, item: Model, condition: Condition | None = None) -> None:
        self._items.append(("delete", label, lambda tx: tx.delete(item, condition=condition)))

    def save(self, label: str, item: Model, condition: Condition) -> None:
        self._items.append(("put", label, lambda tx: tx.save(item, condition=condition)))

    def update(self, label: str, item: Model, actions: list[Action], condition: Condition) -> None:
        self._items.append(("update", label, lambda tx: tx.update(item, actions=actions, condition=condition)))

    def commit(self) -> set[str]:
        """Write all or nothing; the labels of the items that cancelled it (empty when it was written)."""
        ordered = sorted(self._items, key=lambda i: _KINDS.index(i[0]))
        try:
            with TransactWrite(connection=models.connection()) as tx:
                for _, _, add in ordered:
                    add(tx)
        except TransactWriteError as exc:
            if exc.cause_response_code != "TransactionCanceledException":
                raise
            reasons = exc.cancellation_reasons or []
            return {ordered[i][1] for i, r in enumerate(reasons) if r is not None and r.code != "None"}
        return set()


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
        """Raises InvalidCursor for a cursor that is not one of this table's keys."""
        start = decode_cursor(cursor)
        if start is not None and (set(start) != {"contact_id"} or set(start["contact_id"]) != {"S"}):
            # Well-formed but made up (or from another list): DynamoDB would refuse it with a 500.
            raise InvalidCursor("the cursor is not one this API gave out")
        result = ContactModel.scan(filter_condition=filter_condition, limit=limit, last_evaluated_key=start)
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def all(self) -> Iterator[ContactModel]:
        return iter(ContactModel.scan())

    # -- writes ----------------------------------------------------------------------------------

    def create(self, write: ContactWrite, *, form: str | None = None) -> ContactModel:
        """A new contact; raises DuplicateContact when its address or external id is taken.

        No transaction: DynamoDB bills a transaction's writes twice, and moto (the local stack) runs one
        by copying every table it touches, which grows with the table. Instead the address and external
        id keys are claimed one by one with conditional puts, the suppression list is read after the
        claim (so an erasure that freed the address is seen: it suppresses before it releases), and
        then the contact is written under a condition of its own. Claims are released when anything
        fails; one left by a writer that died in between is taken over once stale (`_live_holder`).
        """
        email, external = write.email, write.external_id
        contact_id = derived_id(email) if email else _random_id()
        suppressed: bool | None = None  # not read yet
        # The external id names the contact more surely than the address: a clash on it is reported first.
        keys = [k for k in (external and external_key(external), email and email_key(email)) if k]
        for _ in range(4):
            now = self._clock()
            claimed: list[str] = []
            try:
                for key in keys:
                    self._claim(key, contact_id, now)
                    claimed.append(key)
                if suppressed is None:
                    suppressed = bool(email) and self._suppressed(email or "")
                    if suppressed:
                        # An erased contact may have had the derived id; its executions' names contain it,
                        # so a new contact under that id could never run through those flows again.
                        self._release(claimed, contact_id)
                        contact_id = _random_id()
                        continue
                item = ContactModel(contact_id=contact_id, created_at=now, updated_at=now, fields={})
                self._fill(item, write, suppressed=bool(suppressed))
                if form:
                    item.forms_submitted = {form}
                try:
                    item.save(condition=ContactModel.contact_id.does_not_exist())
                except PutError as exc:
                    if not _conditional_failed(exc):
                        raise
                    # The derived id belongs to a contact whose address changed since: take a fresh one.
                    self._release(claimed, contact_id)
                    contact_id = _random_id()
                    continue
                return item
            except BaseException:
                self._release(claimed, contact_id)
                raise
        raise RuntimeError("could not create the contact")

    def _claim(self, key: str, contact_id: str, now: dt.datetime) -> None:
        """Make `key` this contact's, or raise DuplicateContact naming its holder."""
        for _ in range(3):
            try:
                ContactKeyModel(key=key, contact_id=contact_id, claimed_at=now).save(
                    condition=ContactKeyModel.key.does_not_exist()
                )
                return
            except PutError as exc:
                if not _conditional_failed(exc):
                    raise
            holder = self._live_holder(key, now)
            if holder is not None:
                raise DuplicateContact(key, holder)
        raise DuplicateContact(key, None)

    def _live_holder(self, key: str, now: dt.datetime) -> str | None:
        """The contact holding `key`: one that exists, or one being created right now (its claim is
        fresh; it exists a moment later). A stale claim without its contact is removed: None."""
        try:
            held = ContactKeyModel.get(key, consistent_read=True)
        except DoesNotExist:
            return None
        if self.get_item(held.contact_id) is not None:
            return str(held.contact_id)
        if held.claimed_at is not None and now - held.claimed_at < STALE_CLAIM:
            return str(held.contact_id)
        with contextlib.suppress(DeleteError):  # taken over or released meanwhile: look again anyway
            held.delete(
                condition=(ContactKeyModel.contact_id == held.contact_id)
                & (
                    ContactKeyModel.claimed_at.does_not_exist()
                    if held.claimed_at is None
                    else ContactKeyModel.claimed_at == held.claimed_at
                )
            )
        return None

    @staticmethod
    def _release(keys: list[str], contact_id: str) -> None:
        """Give back claims this create made (only while they are still this contact's)."""
        for key in keys:
            with contextlib.suppress(DeleteError):
                ContactKeyModel(key=key).delete(condition=ContactKeyModel.contact_id == contact_id)
        keys.clear()

    def upsert(
        self, write: ContactWrite, *, form: str | None = None, initial: dict[str, Any] | None = None
    ) -> tuple[ContactModel, str, bool]:
        """Create or change the contact identified by external id, else by email: (item, id, created).

        `initial` values are set only on a contact this call creates. Raises DuplicateContact when the
        email address belongs to a contact with another external id. The common case, an address seen
        before, is one conditional update of the item whose id derives from the address.
        """
        external, email = write.external_id, write.email
        for attempt in range(3):
            contact_id = None
            if external:
                contact_id = self.owner_of(external_key(external))
            elif email:
                item = self._update_if(derived_id(email), write, ContactModel.email == email, form=form)
                if item is not None:
                    return item, item.contact_id, False
            if contact_id is None:
                # Not known by its external id, nor (usually) by its address: create it. The create's
                # transaction finds an address held by a contact with another id (it moved there).
                try:
                    first = ContactWrite(**{**vars(write), "values": {**(initial or {}), **write.values}})
                    item = self.create(first, form=form)
                    return item, item.contact_id, True
                except DuplicateContact as exc:
                    if exc.contact_id is None:
                        continue  # its holder was erased meanwhile: look again
                    if external and exc.key == email_key(email or ""):
                        # The address is another contact's: it is that contact only if it has no other
                        # external id (the update then gives it this one).
                        holder = self.get_item(exc.contact_id)
                        if holder is not None and holder.external_id not in (None, external):
                            raise
                    contact_id = exc.contact_id
            updated = self.update(contact_id, write, form=form)
            if updated is not None:
                return updated, contact_id, False
            # Erased between the look-up and the update, or still being created by another request (its
            # key is claimed, the contact follows within milliseconds): look again a moment later.
            time.sleep(0.05 * (attempt + 1))
        raise RuntimeError("the contact kept changing during the upsert; try again")

    def update(self, contact_id: str, write: ContactWrite, *, form: str | None = None) -> ContactModel | None:
        """Apply a checked change; None when there is no such contact.

        Raises DuplicateContact when a new address or external id is taken, InputError when the change
        would leave the contact with neither.
        """
        not_ours: set[str] = set()
        for _ in range(5):
            current = self.get_item(contact_id)
            if current is None:
                return None
            key_moves = self._key_moves(current, write)
            new_email = write.values.get("email", current.email)
            if not new_email and not write.values.get("external_id", current.external_id):
                raise InputError([Problem("", "identifier_required", "a contact keeps an `email` or an `external_id`")])
            # A new address that was erased or bounced before must not become mailable by mistake.
            off = {"email"} if new_email and new_email != current.email and self._suppressed(new_email) else set()
            actions = self._actions(write, current=current, form=form, off=off)
            guard = ContactModel.updated_at == current.updated_at
            if not key_moves:
                try:
                    current.update(actions=actions, condition=guard)
                    return current
                except UpdateError as exc:
                    if not _conditional_failed(exc):
                        raise
                    continue
            tx = _Transaction()
            tx.update("item", current, actions, guard)
            for old, new in key_moves:
                if old and old not in not_ours:
                    tx.delete(old, ContactKeyModel(key=old), ContactKeyModel.contact_id == contact_id)
                if new:
                    tx.save(new, ContactKeyModel(key=new, contact_id=contact_id), ContactKeyModel.key.does_not_exist())
            failed = tx.commit()
            if not failed:
                return self.get_item(contact_id)
            if "item" not in failed:
                for _, new in key_moves:
                    if new in failed:
                        holder = self._live_holder(new, self._clock())
                        if holder is not None:
                            raise DuplicateContact(new, holder)
                        # A stale claim without its contact was in the way; it is gone now.
            # An old key that is not (or no longer) this contact's is left alone; else it changed meanwhile.
            not_ours |= {old for old, _ in key_moves if old in failed}
        raise RuntimeError(f"contact {contact_id} kept changing; try again")

    def _update_if(
        self, contact_id: str, write: ContactWrite, condition: Condition, *, form: str | None
    ) -> ContactModel | None:
        """The item after the change, or None when the condition does not hold (nothing changed)."""
        if _needs_read(write):
            return None
        item = ContactModel(contact_id=contact_id)
        try:
            # UpdateItem returns the whole new item (ALL_NEW): no read is needed to answer with it.
            item.update(actions=self._actions(write, current=None, form=form), condition=condition)
        except UpdateError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return item

    @staticmethod
    def _suppressed(email: str) -> bool:
        try:
            SuppressionModel.get(suppression_hash(email), consistent_read=True)
        except DoesNotExist:
            return False
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

    def _actions(
        self, write: ContactWrite, *, current: ContactModel | None, form: str | None, off: set[str] | None = None
    ) -> list[Action]:
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
        consent = write.consent or {}
        for channel, given in consent.items():
            actions.append(getattr(ContactModel, f"consent_{channel}").set(given))
        mail_off = {c for c, v in consent.items() if v["status"] != "granted"} | (off or set())
        mail_on = {c for c, v in consent.items() if v["status"] == "granted"} - mail_off
        if mail_off or mail_on:
            if current is not None:
                before = set(current.unsubscribed or ())
                final = (before | mail_off) - mail_on
                if final != before:
                    actions.append(
                        ContactModel.unsubscribed.set(final) if final else ContactModel.unsubscribed.remove()
                    )
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
        """Remove the contact and its keys in one transaction (the rest of an erasure is the engine's).

        Raises TransactWriteError when a key is no longer this contact's (its address or external id
        changed meanwhile): the caller reads the contact again.
        """
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
