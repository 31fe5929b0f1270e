"""Segments over an index: which index entries a contact has, and how a condition is answered.

The segment index holds one item per (entry, contact). An entry names one fact that the condition
language can ask about with equality:

- `tag:<tag>`, `list:<list>`, `form:<form key>`: exact, as `tag`, `list` and `form_submitted` compare;
- `field:<path>=<text>` for text and `field:<path>#<number>` for numbers (and booleans, which the
  evaluator compares like 1 and 0), for the standard fields in `INDEXED_FIELDS` and every custom field
  (`fields.<name>`). Text is casefolded exactly as the evaluator's `_norm` compares it; the path is
  percent-quoted so that neither `=` nor `#` can appear in it and no two entries collide.

A value whose entry would be longer than `MAX_ENTRY_BYTES` is not indexed (a partition key holds at
most 2,048 bytes), and the planner sends a comparison with such a value to a scan, so the two agree.

`plan` maps a condition to a `Plan`: the index entries whose union holds every contact that matches
(or None: scan the contacts), and whether that union holds exactly the matches (count straight from
the index, no contact reads) or only candidates that the evaluator must check. `check` lists what a
segment's condition may not contain. Pure: nothing here touches AWS.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, assert_never
from urllib.parse import quote

from pydantic import ConfigDict, Field, field_validator

from chalicelib.contacts.conditions import (
    AllOf,
    AnyOf,
    Condition,
    EngagementCondition,
    FieldCondition,
    FormSubmittedCondition,
    ListCondition,
    Not,
    TagCondition,
)
from chalicelib.contacts.input import Problem
from chalicelib.contacts.model import STANDARD_FIELDS, Contact
from chalicelib.schema import Model


class SegmentDefinition(Model):
    """A saved segment as a marketer writes it: a name and a condition of the flow condition language."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="What marketers call it, e.g. `Dutch leads`.")
    condition: Condition = Field(
        description="Who is in the segment: the condition language of flow filters and branches, without"
        " `engagement` (which belongs to a participant of a flow)."
    )

    @field_validator("name")
    @classmethod
    def _visible(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("a name needs a visible character")
        return name.strip()


# Standard fields marketers segment on by equality; email, phone and names are looked up otherwise.
INDEXED_FIELDS = ("category", "language", "timezone", "owner_email")
# Half of DynamoDB's 2,048-byte partition key limit: room to spare, and still every tag, list name,
# category or choice value fits; only long free text is left to the scan.
MAX_ENTRY_BYTES = 1024
# A segment's condition is a tree marketers write by hand; these bounds keep its evaluation cheap.
MAX_DEPTH = 12
MAX_NODES = 200


def _bounded(entry: str) -> str | None:
    return entry if len(entry.encode()) <= MAX_ENTRY_BYTES else None


def tag_entry(tag: str) -> str | None:
    return _bounded("tag:" + tag)


def list_entry(name: str) -> str | None:
    return _bounded("list:" + name)


def form_entry(form: str) -> str | None:
    return _bounded("form:" + form)


def is_indexed_field(path: str) -> bool:
    return path in INDEXED_FIELDS or (path.startswith("fields.") and len(path) > len("fields."))


def field_entry(path: str, value: Any) -> str | None:
    """The entry of `path` having `value`, or None when such a value is not indexed.

    Two values get the same entry exactly when the evaluator's `eq` says they are equal: text by its
    casefolded form, numbers by value (1 == 1.0 == True), and nothing else (None, lists, maps, NaN).
    """
    if not is_indexed_field(path):
        return None
    name = quote(path, safe=".")
    if isinstance(value, str):
        return _bounded(f"field:{name}={value.casefold()}")
    number = _canonical_number(value)
    return None if number is None else _bounded(f"field:{name}#{number}")


def _canonical_number(value: Any) -> str | None:
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # An integral float equals the int of the same value; any other float has one shortest repr.
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def entries(contact: Contact, forms_submitted: Iterable[str] = ()) -> frozenset[str]:
    """Every index entry of a contact."""
    found: list[str | None] = [tag_entry(t) for t in contact.tags]
    found += [list_entry(name) for name in contact.lists]
    found += [form_entry(f) for f in forms_submitted]
    found += [field_entry(name, contact.get(name)) for name in INDEXED_FIELDS]
    found += [field_entry("fields." + name, value) for name, value in contact.fields.items()]
    return frozenset(e for e in found if e is not None)


@dataclass(frozen=True)
class Plan:
    """How a condition is answered.

    `entries` is None for a full scan of the contacts; otherwise every matching contact is in the union
    of these index partitions. `exact`: the union holds the matches and nothing else.
    """

    entries: tuple[str, ...] | None
    exact: bool

    @property
    def served_by(self) -> Literal["index", "scan"]:
        return "scan" if self.entries is None else "index"


SCAN = Plan(None, False)


def _index(found: Iterable[str | None]) -> Plan:
    listed = list(found)
    if any(e is None for e in listed):
        return SCAN
    return Plan(tuple(sorted({e for e in listed if e is not None})), True)


def plan(cond: Condition) -> Plan:
    """The cheapest sound way to find the contacts matching `cond`."""
    match cond:
        case TagCondition(tag=tag):
            return _index([tag_entry(tag)])
        case ListCondition(list=name):
            return _index([list_entry(name)])
        case FormSubmittedCondition(form=form):
            return _index([form_entry(form)])
        case FieldCondition(field=path, op="eq", value=value):
            return _index([field_entry(path, value)])
        case FieldCondition(field=path, op="in", value=value):
            # `in` with one bare value is `eq`; an empty list matches nobody (an empty, exact plan).
            options = value if isinstance(value, list) else [value]
            return _index([field_entry(path, option) for option in options])
        case FieldCondition():
            return SCAN
        case AllOf(conditions=children):
            if len(children) == 1:
                return plan(children[0])
            return _all(children)
        case AnyOf(conditions=children):
            plans = [plan(c) for c in children]
            if any(p.entries is None for p in plans):
                return SCAN
            union = sorted({e for p in plans for e in p.entries or ()})
            return Plan(tuple(union), all(p.exact for p in plans))
        case Not(condition=Not(condition=inner)):
            return plan(inner)
        case Not():
            return SCAN
        case EngagementCondition():
            # Engagement belongs to a flow's participant; `check` refuses it in a segment.
            return SCAN
        case _:
            assert_never(cond)


def _all(children: list[Condition]) -> Plan:
    """Candidates from one child, checked against the whole condition.

    Without statistics the planner prefers the child that reads the fewest partitions, then one whose
    partitions hold only its own matches, then the first written: marketers can put the most
    selective indexed condition first.
    """
    best: tuple[tuple[int, bool, int], tuple[str, ...]] | None = None
    for i, child in enumerate(children):
        found = plan(child)
        if found.entries is None:
            continue
        rank = (len(found.entries), not found.exact, i)
        if best is None or rank < best[0]:
            best = (rank, found.entries)
    return SCAN if best is None else Plan(best[1], False)


def check(cond: Condition, path: str = "/condition") -> list[Problem]:
    """What a segment's condition may not contain: engagement (it belongs to a flow's participant,
    and a segment is over contacts), unknown standard fields, and trees too deep or too large."""
    problems: list[Problem] = []
    nodes = 0

    def visit(node: Condition, where: str, depth: int) -> None:
        nonlocal nodes
        nodes += 1
        if depth > MAX_DEPTH:
            problems.append(Problem(where, "too_deep", f"conditions nest at most {MAX_DEPTH} levels"))
            return
        match node:
            case AllOf(conditions=children) | AnyOf(conditions=children):
                for i, child in enumerate(children):
                    visit(child, f"{where}/conditions/{i}", depth + 1)
            case Not(condition=inner):
                visit(inner, f"{where}/condition", depth + 1)
            case EngagementCondition():
                problems.append(
                    Problem(
                        where,
                        "engagement_in_segment",
                        "opened/clicked belong to a participant of a flow; a segment is over contacts",
                    )
                )
            case FieldCondition(field=name):
                if name not in STANDARD_FIELDS and not is_indexed_field(name):
                    problems.append(
                        Problem(
                            f"{where}/field",
                            "unknown_field",
                            f"{name!r} is neither a standard field ({', '.join(STANDARD_FIELDS)}) nor fields.<name>",
                        )
                    )
            case TagCondition() | ListCondition() | FormSubmittedCondition():
                pass
            case _:
                assert_never(node)

    visit(cond, path, 1)
    if nodes > MAX_NODES:
        problems.append(Problem(path, "too_large", f"a segment's condition has at most {MAX_NODES} parts"))
    return problems
