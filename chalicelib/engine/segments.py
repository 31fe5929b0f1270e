"""Segments: saved conditions over contacts, counted and paged through the segment index.

- `index_change` keeps the index in step with the contacts: for each change on the contacts stream it
  puts the entries the contact gained and deletes those it lost (`contacts.segments.entries` of the old
  and new images). Puts and deletes are idempotent, so a redelivered change writes the same items.
- `count_matching` and `select` answer a condition with its `contacts.segments.plan`: an exact plan
  is counted from the index alone (one `Select=COUNT` query for one entry); an inexact one reads the
  candidate contacts in batches and keeps those the one evaluator (`contacts.conditions.evaluate`)
  accepts; a condition no index serves is answered by scanning the contacts.
- `SegmentService` is the saved segment's use cases behind `/segments`.

Members are always checked against the contact as it is now, so a page never shows a contact that
stopped matching a moment ago while the index catches up; counts from the index follow the change
stream (seconds behind).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from pynamodb.exceptions import PutError

from chalicelib.contacts.conditions import Condition, evaluate
from chalicelib.contacts.input import Problem
from chalicelib.contacts.model import Facts
from chalicelib.contacts.segments import Plan, SegmentDefinition, check, entries, plan
from chalicelib.engine.errors import BadRequest, NotFound, Unprocessable
from chalicelib.engine.ports import Runtime
from chalicelib.storage.models import ContactModel, SegmentModel
from chalicelib.storage.paging import InvalidCursor, Page, decode_cursor, encode_cursor
from chalicelib.storage.repos import to_contact
from chalicelib.storage.segment_index import BATCH_GET

if TYPE_CHECKING:
    from chalicelib.engine.changes import Change

# Contacts one members request reads at most before answering with what it found (and a cursor).
MAX_EXAMINED = 1000
# Contacts per scan request, and the least candidates read per round of an inexact index plan.
SCAN_PAGE = 100
CANDIDATE_CHUNK = 50

_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)
_CODES = {"extra_forbidden": "unknown_field", "missing": "required"}
# What `create` hands out; anything else cannot name a segment (and may be too long to be a key).
_ID = re.compile(r"sg_[0-9a-f]{1,32}")


def facts_of(item: ContactModel) -> Facts:
    """What a segment's condition sees of a stored contact (no engagement: that is a participant's)."""
    return Facts(to_contact(item), forms_submitted=frozenset(item.forms_submitted or ()))


def entries_of(item: ContactModel | None) -> frozenset[str]:
    if item is None:
        return frozenset()
    return entries(to_contact(item), item.forms_submitted or ())


def index_change(rt: Runtime, change: Change) -> None:
    """Keep the segment index in step with one contact change (created, changed or erased)."""
    current = change.new if change.new is not None else change.old
    if current is None:
        return
    old, new = entries_of(change.old), entries_of(change.new)
    rt.segment_index.apply(str(current.contact_id), add=new - old, remove=old - new)


# --- answering a condition ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Count:
    count: int
    plan: Plan
    # Contacts read and evaluated to get the count: 0 when the index alone answered.
    contacts_evaluated: int


def count_matching(rt: Runtime, cond: Condition) -> Count:
    how = plan(cond)
    if how.entries is None:
        matched = examined = 0
        for item in rt.contacts.all():
            examined += 1
            matched += evaluate(cond, facts_of(item))
        return Count(matched, how, examined)
    if how.exact:
        if len(how.entries) == 1:
            return Count(rt.segment_index.count(how.entries[0]), how, 0)
        return Count(len(_candidates(rt, how.entries)), how, 0)
    candidates = sorted(_candidates(rt, how.entries))
    matched = 0
    for start in range(0, len(candidates), BATCH_GET):
        found = rt.segment_index.contacts(candidates[start : start + BATCH_GET])
        matched += sum(evaluate(cond, facts_of(item)) for item in found.values())
    return Count(matched, how, len(candidates))


def _candidates(rt: Runtime, keys: tuple[str, ...]) -> set[str]:
    return {contact_id for entry in keys for contact_id in rt.segment_index.ids(entry)}


def select(rt: Runtime, cond: Condition, *, cursor: str | None, limit: int) -> Page[ContactModel]:
    """A page of the contacts matching `cond`, in a stable order, after `cursor`.

    A page may hold fewer than `limit` contacts (when many candidates did not match) while
    `cursor` says there is more; the last page has no cursor.
    """
    after = after_of(cursor)
    how = plan(cond)
    if how.entries is None:
        return _select_scan(rt, cond, after, limit)
    return _select_index(rt, cond, how, after, limit)


def contacts_where(rt: Runtime, filters: dict[str, str], *, cursor: str | None, limit: int) -> Page[ContactModel]:
    """The contacts with every given `tag`, `list` and `category` (the filters of `GET /contacts`),
    paged through the index like a segment. Raises InvalidCursor for a cursor of another list."""
    terms: list[dict[str, Any]] = []
    if "tag" in filters:
        terms.append({"type": "tag", "tag": filters["tag"]})
    if "list" in filters:
        terms.append({"type": "list", "list": filters["list"]})
    if "category" in filters:
        terms.append({"type": "field", "field": "category", "op": "eq", "value": filters["category"]})
    empty = [name for name in ("tag", "list", "category") if filters.get(name) == ""]
    if empty:
        raise BadRequest("invalid_filter", f"give the filter(s) {empty} a value")
    cond = _CONDITION.validate_python(terms[0] if len(terms) == 1 else {"type": "all", "conditions": terms})
    return select(rt, cond, cursor=cursor, limit=limit)


def after_of(cursor: str | None) -> str | None:
    """The contact id a members cursor stands after; raises InvalidCursor for any other cursor."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    value = key.get("contact_id")
    if set(key) != {"contact_id"} or not isinstance(value, dict) or not isinstance(value.get("S"), str):
        raise InvalidCursor("the cursor is not one this API gave out")
    return str(value["S"])


def _cursor(contact_id: str) -> str | None:
    # The shape of the contacts table's own last evaluated key, so a scan can resume from it too.
    return encode_cursor({"contact_id": {"S": contact_id}})


def _select_index(rt: Runtime, cond: Condition, how: Plan, after: str | None, limit: int) -> Page[ContactModel]:
    assert how.entries is not None
    members: list[ContactModel] = []
    examined = 0
    while examined < MAX_EXAMINED:
        wanted = limit - len(members)
        # An exact plan's candidates (almost) all match; an inexact one's may not, so read more at once.
        chunk = wanted if how.exact else max(wanted, CANDIDATE_CHUNK)
        # One more than needed tells whether anything follows.
        ids = rt.segment_index.ids_after(how.entries, after, chunk + 1)
        batch = ids[:chunk]
        if not batch:
            return Page(members, None)
        found = rt.segment_index.contacts(batch)
        done = 0
        for contact_id in batch:
            done += 1
            examined += 1
            after = contact_id
            item = found.get(contact_id)
            if item is not None and evaluate(cond, facts_of(item)):
                members.append(item)
                if len(members) == limit:
                    break
        if done == len(ids):
            return Page(members, None)
        if len(members) == limit:
            break
    assert after is not None
    return Page(members, _cursor(after))


def _select_scan(rt: Runtime, cond: Condition, after: str | None, limit: int) -> Page[ContactModel]:
    members: list[ContactModel] = []
    examined = 0
    position = _cursor(after) if after else None
    while examined < MAX_EXAMINED:
        page = rt.contacts.page(cursor=position, limit=max(limit, SCAN_PAGE))
        for i, item in enumerate(page.items):
            examined += 1
            if evaluate(cond, facts_of(item)):
                members.append(item)
                if len(members) == limit:
                    # Stopping inside a page: resume after this contact, as a scan of that length would.
                    return Page(members, page.cursor if i == len(page.items) - 1 else _cursor(item.contact_id))
        if page.cursor is None:
            return Page(members, None)
        position = page.cursor
    return Page(members, position)


# --- saved segments -------------------------------------------------------------------------------------


def segment_view(item: SegmentModel) -> dict[str, Any]:
    how = plan(condition_of(item))
    return {
        "segment_id": item.item_id,
        "name": item.name,
        "condition": item.condition,
        "served_by": how.served_by,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def condition_of(item: SegmentModel) -> Condition:
    return _CONDITION.validate_python(item.condition)


def parse_definition(body: Any) -> SegmentDefinition:
    """A segment body checked whole: its shape (every violation with its path), then its condition."""
    try:
        spec = SegmentDefinition.model_validate(body)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            path = _pointer(body, e["loc"])
            if e["type"].startswith("union_tag"):
                # An unknown or missing `type`: point at it, not at the node.
                path = path.rstrip("/") + "/type"
            problems.append(Problem(path, _CODES.get(e["type"], "invalid"), e["msg"]))
        raise _invalid(problems) from None
    problems = check(spec.condition)
    if problems:
        raise _invalid(problems)
    return spec


def _invalid(problems: list[Problem]) -> Unprocessable:
    return Unprocessable(
        "invalid_segment", f"the segment has {len(problems)} problem(s)", [p.as_dict() for p in problems]
    )


def _pointer(body: Any, loc: tuple[int | str, ...]) -> str:
    """The JSON pointer of a pydantic error location, without the union tags pydantic inserts
    (`/condition/all/conditions/0` is `/condition/conditions/0` in the body)."""
    parts: list[str] = []
    node = body
    tagged: object = None
    for step in loc:
        if tagged is not node and isinstance(node, dict) and isinstance(step, str) and node.get("type") == step:
            # Once per node: `{"type": "tag"}` missing its `tag` is at `.../tag/tag`.
            tagged = node
            continue
        parts.append(str(step))
        if isinstance(node, dict):
            node = node.get(step) if isinstance(step, str) else None
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
        else:
            node = None
    return "/" + "/".join(parts)


class SegmentService:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def create(self, body: Any) -> SegmentModel:
        spec = parse_definition(body)
        for _ in range(3):
            item = self._rt.segments.create(
                "sg_" + uuid.uuid4().hex[:16], name=spec.name, condition=spec.condition.model_dump(mode="json")
            )
            if item is not None:
                return item
        raise RuntimeError("could not find a free segment id")

    def get(self, segment_id: str) -> SegmentModel:
        item = self._rt.segments.get(segment_id) if _ID.fullmatch(segment_id) else None
        if item is None:
            raise NotFound("segment_not_found", f"no segment {segment_id!r}")
        return item

    def page(self, *, cursor: str | None, limit: int) -> Page[SegmentModel]:
        key = decode_cursor(cursor)
        if key is not None and (set(key) != {"kind", "item_id"} or key["kind"] != {"S": "segment"}):
            raise BadRequest("invalid_cursor", "the cursor is not one this API gave out")
        return self._rt.segments.page(cursor=cursor, limit=limit)

    def replace(self, segment_id: str, body: Any) -> SegmentModel:
        spec = parse_definition(body)
        item = self.get(segment_id)
        try:
            return self._rt.segments.replace(item, name=spec.name, condition=spec.condition.model_dump(mode="json"))
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise NotFound("segment_not_found", f"no segment {segment_id!r}") from None
            raise

    def delete(self, segment_id: str) -> None:
        if not _ID.fullmatch(segment_id) or not self._rt.segments.delete(segment_id):
            raise NotFound("segment_not_found", f"no segment {segment_id!r}")

    def members(self, segment_id: str, *, cursor: str | None, limit: int) -> Page[ContactModel]:
        cond = condition_of(self.get(segment_id))
        try:
            return select(self._rt, cond, cursor=cursor, limit=limit)
        except InvalidCursor as exc:
            raise BadRequest("invalid_cursor", str(exc)) from None

    def count(self, segment_id: str) -> dict[str, Any]:
        item = self.get(segment_id)
        counted = count_matching(self._rt, condition_of(item))
        return {
            "segment_id": item.item_id,
            "count": counted.count,
            "served_by": counted.plan.served_by,
            "index_entries": list(counted.plan.entries or ()),
            "contacts_evaluated": counted.contacts_evaluated,
            "counted_at": self._rt.clock().isoformat(),
        }
