"""The condition language: what filters and branches decide, and the reasons traces show."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from chalicelib.contacts.conditions import Condition, evaluate, explain, requires_field
from chalicelib.contacts.model import Contact, Facts

CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


def cond(doc: dict[str, Any]) -> Condition:
    return CONDITION.validate_python(doc)


ANNA = Contact(
    contact_id="c1",
    email="anna@example.com",
    first_name="Anna",
    language="NL",
    fields={"score": 42, "plan": "Pro"},
    tags=frozenset({"vip"}),
    lists=frozenset({"newsletter"}),
)


def test_field_comparisons_ignore_case_of_text() -> None:
    facts = Facts(ANNA)
    assert evaluate(cond({"type": "field", "field": "language", "value": "nl"}), facts)
    assert evaluate(cond({"type": "field", "field": "fields.plan", "op": "in", "value": ["pro", "team"]}), facts)
    assert evaluate(cond({"type": "field", "field": "fields.score", "op": "gte", "value": 42}), facts)
    assert not evaluate(cond({"type": "field", "field": "fields.score", "op": "gt", "value": 42}), facts)
    assert not evaluate(cond({"type": "field", "field": "phone", "op": "exists"}), facts)
    assert evaluate(cond({"type": "field", "field": "phone", "op": "not_exists"}), facts)


def test_number_against_text_does_not_match_instead_of_failing() -> None:
    assert not evaluate(cond({"type": "field", "field": "fields.plan", "op": "gt", "value": 3}), Facts(ANNA))


def test_missing_field_matches_only_negative_comparisons() -> None:
    facts = Facts(ANNA)
    assert not evaluate(cond({"type": "field", "field": "fields.city", "value": "Gent"}), facts)
    assert evaluate(cond({"type": "field", "field": "fields.city", "op": "ne", "value": "Gent"}), facts)


def test_all_any_not_tags_lists_and_engagement() -> None:
    opened = Facts(ANNA, engagement=frozenset({("opened", "welcome")}))
    tree = cond(
        {
            "type": "all",
            "conditions": [
                {"type": "tag", "tag": "vip"},
                {"type": "list", "list": "newsletter"},
                {
                    "type": "any",
                    "conditions": [
                        {"type": "engagement", "event": "clicked", "step": "welcome"},
                        {"type": "engagement", "event": "opened", "step": "welcome"},
                    ],
                },
                {"type": "not", "condition": {"type": "tag", "tag": "customer"}},
            ],
        }
    )
    assert evaluate(tree, opened)
    verdict, reason = explain(tree, Facts(ANNA))
    assert not verdict
    assert reason == "not clicked welcome and not opened welcome"


def test_requires_field_sees_through_all_but_not_through_any_or_not() -> None:
    phone = {"type": "field", "field": "phone", "op": "exists"}
    assert requires_field(cond(phone), "phone")
    assert requires_field(cond({"type": "all", "conditions": [phone, {"type": "tag", "tag": "x"}]}), "phone")
    assert not requires_field(cond({"type": "any", "conditions": [phone, {"type": "tag", "tag": "x"}]}), "phone")
    assert not requires_field(cond({"type": "not", "condition": phone}), "phone")
    assert not requires_field(None, "phone")


@given(st.sampled_from(["vip", "customer", "x"]), st.booleans())
def test_not_is_the_opposite(tag: str, _: bool) -> None:
    inner = cond({"type": "tag", "tag": tag})
    negated = cond({"type": "not", "condition": {"type": "tag", "tag": tag}})
    assert evaluate(negated, Facts(ANNA)) is not evaluate(inner, Facts(ANNA))
