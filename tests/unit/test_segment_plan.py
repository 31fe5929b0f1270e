"""Index entries and the planner: which conditions the segment index answers, and that it answers them right.

The properties say that for any contact and condition the plan agrees with the evaluator: an exact
plan's entries hold the contacts that match and no others; an inexact plan's entries hold at least
every contact that matches. The storage-backed version is in tests/functional/test_segments.py.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from chalicelib.contacts.conditions import Condition, FieldCondition, evaluate
from chalicelib.contacts.model import Contact, Facts
from chalicelib.contacts.segments import MAX_ENTRY_BYTES, check, entries, field_entry, plan
from tests.strategies import combined

CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


def cond(doc: dict[str, Any]) -> Condition:
    return CONDITION.validate_python(doc)


def field(path: str, value: Any, op: str = "eq") -> dict[str, Any]:
    return {"type": "field", "field": path, "op": op, "value": value}


VIP = {"type": "tag", "tag": "vip"}
NEWS = {"type": "list", "list": "news"}


def test_entries_of_a_contact() -> None:
    anna = Contact(
        contact_id="c1",
        email="anna@example.com",
        language="NL",
        category="lead",
        timezone="Europe/Brussels",
        owner_email="sales@example.com",
        fields={"plan": "Pro", "score": 42.0, "vip": True, "interests": ["a"], "note": "x" * 2000},
        tags=frozenset({"vip"}),
        lists=frozenset({"news"}),
    )
    assert entries(anna, ["demo"]) == {
        "tag:vip",
        "list:news",
        "form:demo",
        "field:language=nl",
        "field:category=lead",
        "field:timezone=europe/brussels",
        "field:owner_email=sales@example.com",
        "field:fields.plan=pro",
        "field:fields.score#42",
        "field:fields.vip#1",
    }


def test_field_entries_separate_types_and_cannot_collide() -> None:
    assert field_entry("fields.code", "5") != field_entry("fields.code", 5)
    assert field_entry("fields.code", 5) == field_entry("fields.code", 5.0) == "field:fields.code#5"
    assert field_entry("fields.code", True) == field_entry("fields.code", 1)
    assert field_entry("fields.code", 0.1) == "field:fields.code#0.1"
    # A name holding the separators is quoted, so it cannot pose as another field's value.
    assert field_entry("fields.a=b", "c") == "field:fields.a%3Db=c"
    assert field_entry("fields.a", "b=c") == "field:fields.a=b=c"
    assert field_entry("language", "NL") == field_entry("language", "nl")
    assert field_entry("fields.language", "nl") != field_entry("language", "nl")
    for unindexed in (None, [1], {"a": 1}, float("nan"), float("inf"), "x" * MAX_ENTRY_BYTES):
        assert field_entry("fields.code", unindexed) is None
    assert field_entry("email", "a@example.com") is None
    assert field_entry("fields.", "x") is None


def test_plans_of_the_common_conditions() -> None:
    assert plan(cond(VIP)).entries == ("tag:vip",)
    assert plan(cond(VIP)).exact
    assert plan(cond({"type": "form_submitted", "form": "demo"})).entries == ("form:demo",)
    assert plan(cond(field("category", "Lead"))).entries == ("field:category=lead",)
    assert plan(cond(field("fields.plan", ["Pro", "team", "pro"], "in"))).entries == (
        "field:fields.plan=pro",
        "field:fields.plan=team",
    )
    empty = plan(cond(field("category", [], "in")))
    assert (empty.entries, empty.exact) == ((), True)
    union = plan(cond({"type": "any", "conditions": [VIP, NEWS]}))
    assert (union.entries, union.exact) == (("list:news", "tag:vip"), True)
    # `all` reads the child with the fewest partitions and checks the whole condition on its contacts.
    both = plan(cond({"type": "all", "conditions": [field("category", ["lead", "customer"], "in"), NEWS, VIP]}))
    assert (both.entries, both.exact, both.served_by) == (("list:news",), False, "index")
    assert plan(cond({"type": "all", "conditions": [VIP]})).exact
    partly = plan(cond({"type": "all", "conditions": [field("company", "Acme"), VIP]}))
    assert (partly.entries, partly.exact) == (("tag:vip",), False)
    assert plan(cond({"type": "not", "condition": {"type": "not", "condition": VIP}})).entries == ("tag:vip",)


def test_conditions_served_by_a_scan() -> None:
    for doc in (
        {"type": "not", "condition": VIP},
        field("company", "Acme"),
        field("email", "a@example.com"),
        field("fields.score", 3, "gt"),
        field("category", "lead", "ne"),
        field("category", None, "exists"),
        field("fields.plan", "x" * 2000),
        field("fields.plan", ["pro", {"a": 1}], "in"),
        {"type": "any", "conditions": [VIP, field("company", "Acme")]},
        {"type": "all", "conditions": [field("company", "Acme"), {"type": "not", "condition": VIP}]},
    ):
        assert plan(cond(doc)).served_by == "scan", doc


def test_check_refuses_engagement_unknown_fields_and_huge_trees() -> None:
    assert check(cond(VIP)) == []
    got = check(
        cond(
            {
                "type": "any",
                "conditions": [
                    {"type": "engagement", "event": "opened", "step": "welcome"},
                    field("colour", "red"),
                    field("fields.colour", "red"),
                    field("first_name", "Anna"),
                ],
            }
        )
    )
    assert [(p.path, p.code) for p in got] == [
        ("/condition/conditions/0", "engagement_in_segment"),
        ("/condition/conditions/1/field", "unknown_field"),
    ]
    wide = cond({"type": "any", "conditions": [VIP] * 250})
    assert [p.code for p in check(wide)] == ["too_large"]


# --- properties ----------------------------------------------------------------------------------------

TAGS = ["vip", "VIP", "new"]
LISTS = ["news", "offers"]
TEXTS = ["nl", "NL", "en", "Lead", "lead", "#1", "a=b", "straße", "STRASSE", "ǅ", "ǆ", "x" * 1100, ""]
SCALARS = st.one_of(
    st.sampled_from([*TEXTS, 0, 1, 1.0, -0.0, 1.5, True, False, 10**16, 2**53 + 1, float(2**53)]),
    st.text(max_size=3),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
)
VALUES = st.one_of(SCALARS, st.none(), st.lists(SCALARS, max_size=2))
FIELDS = ["category", "language", "timezone", "owner_email", "company", "fields.plan", "fields.score"]

contacts = st.builds(
    lambda tags, lists, standard, fields: Contact(
        contact_id="c1", **standard, fields=fields, tags=frozenset(tags), lists=frozenset(lists)
    ),
    st.sets(st.sampled_from(TAGS), max_size=2),
    st.sets(st.sampled_from(LISTS), max_size=2),
    st.dictionaries(
        st.sampled_from(["category", "language", "timezone", "owner_email", "company"]),
        st.one_of(st.sampled_from(TEXTS), st.text(max_size=3)),
        max_size=3,
    ),
    st.dictionaries(st.sampled_from(["plan", "score"]), VALUES, max_size=2),
)
leaves = st.one_of(
    st.builds(lambda t: {"type": "tag", "tag": t}, st.sampled_from(TAGS)),
    st.builds(lambda n: {"type": "list", "list": n}, st.sampled_from(LISTS)),
    st.builds(lambda f: {"type": "form_submitted", "form": f}, st.sampled_from(["demo", "Demo"])),
    st.builds(
        lambda f, op, v: field(f, v, op),
        st.sampled_from(FIELDS),
        st.sampled_from(["eq", "in", "eq", "in", "ne", "contains", "exists", "gt"]),
        VALUES,
    ),
)
conditions = combined(leaves, max_leaves=6).map(cond)


@given(contacts, st.sets(st.sampled_from(["demo", "Demo"]), max_size=1), conditions)
def test_the_plan_agrees_with_the_evaluator(contact: Contact, forms: set[str], c: Condition) -> None:
    how = plan(c)
    matches = evaluate(c, Facts(contact, forms_submitted=frozenset(forms)))
    if how.entries is None:
        assert not how.exact
        return
    in_index = bool(entries(contact, forms) & set(how.entries))
    if how.exact:
        assert in_index == matches
    else:
        assert in_index or not matches


@given(st.sampled_from(FIELDS), SCALARS | st.none(), SCALARS | st.none())
def test_equal_entries_exactly_when_the_evaluator_says_equal(path: str, actual: Any, expected: Any) -> None:
    contact = Contact(contact_id="c1", fields={path.removeprefix("fields."): actual}, **(
        {path: actual} if not path.startswith("fields.") else {}))  # fmt: skip
    equal = evaluate(FieldCondition(type="field", field=path, op="eq", value=expected), Facts(contact))
    a, b = field_entry(path, actual), field_entry(path, expected)
    if a is not None and b is not None:
        assert (a == b) == equal
    elif (a is None) != (b is None):
        # An indexed value never equals one that is not indexed, so the scan fallback loses nobody.
        assert not equal
