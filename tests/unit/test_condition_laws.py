"""Laws of the condition evaluator, over generated contacts and conditions (Hypothesis).

`all`, `any` and `not` must behave as Boolean algebra does, whatever the leaves are, so that a marketer
can rewrite a filter, a branch or a segment into an equivalent form and get the same people.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from chalicelib.contacts.conditions import AllOf, AnyOf, Condition, Not, evaluate, explain
from chalicelib.contacts.model import Contact, Facts
from tests.strategies import combined

CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)

TAGS = ["vip", "VIP", "new"]
LISTS = ["news", "offers"]
TEXTS = ["nl", "NL", "en", "Lead", "lead", "straße", "STRASSE", "", "a b"]
VALUES = st.one_of(
    st.sampled_from([*TEXTS, 0, 1, 1.0, 2.5, -3, True, False, None]),
    st.text(max_size=4),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
FIELDS = ["category", "language", "company", "phone", "fields.plan", "fields.score", "fields.interests"]
OPS = ["eq", "ne", "in", "not_in", "contains", "starts_with", "exists", "not_exists", "gt", "gte", "lt", "lte"]

contacts = st.builds(
    lambda tags, lists, category, language, company, fields: Contact(
        contact_id="c1",
        category=category,
        language=language,
        company=company,
        fields=fields,
        tags=frozenset(tags),
        lists=frozenset(lists),
    ),
    st.sets(st.sampled_from(TAGS), max_size=2),
    st.sets(st.sampled_from(LISTS), max_size=2),
    st.one_of(st.none(), st.sampled_from(TEXTS)),
    st.one_of(st.none(), st.sampled_from(TEXTS)),
    st.one_of(st.none(), st.text(max_size=4)),
    st.dictionaries(
        st.sampled_from(["plan", "score", "interests"]),
        st.one_of(VALUES, st.lists(st.sampled_from(TEXTS), max_size=3)),
        max_size=3,
    ),
)
facts = st.builds(
    lambda contact, engagement, forms: Facts(
        contact, engagement=frozenset(engagement), forms_submitted=frozenset(forms)
    ),
    contacts,
    st.sets(st.tuples(st.sampled_from(["opened", "clicked"]), st.sampled_from(["welcome", "nudge"])), max_size=2),
    st.sets(st.sampled_from(["demo", "Demo"]), max_size=1),
)

leaves = st.one_of(
    st.builds(lambda t: {"type": "tag", "tag": t}, st.sampled_from(TAGS)),
    st.builds(lambda n: {"type": "list", "list": n}, st.sampled_from(LISTS)),
    st.builds(lambda f: {"type": "form_submitted", "form": f}, st.sampled_from(["demo", "Demo"])),
    st.builds(
        lambda e, s: {"type": "engagement", "event": e, "step": s},
        st.sampled_from(["opened", "clicked"]),
        st.sampled_from(["welcome", "nudge"]),
    ),
    st.builds(
        lambda f, op, v: {"type": "field", "field": f, "op": op, "value": v},
        st.sampled_from(FIELDS),
        st.sampled_from(OPS),
        st.one_of(VALUES, st.lists(VALUES, max_size=3)),
    ),
)
documents = combined(leaves, max_leaves=6)
conditions = documents.map(CONDITION.validate_python)


def all_of(*children: Condition) -> Condition:
    return AllOf(type="all", conditions=list(children))


def any_of(*children: Condition) -> Condition:
    return AnyOf(type="any", conditions=list(children))


def not_(child: Condition) -> Condition:
    return Not(type="not", condition=child)


@given(conditions, facts)
def test_double_negation(c: Condition, f: Facts) -> None:
    assert evaluate(not_(not_(c)), f) == evaluate(c, f)


@given(st.lists(conditions, min_size=1, max_size=4), facts)
def test_de_morgan(cs: list[Condition], f: Facts) -> None:
    assert evaluate(not_(all_of(*cs)), f) == evaluate(any_of(*[not_(c) for c in cs]), f)
    assert evaluate(not_(any_of(*cs)), f) == evaluate(all_of(*[not_(c) for c in cs]), f)


@given(conditions, facts)
def test_all_or_any_of_one_child_is_the_child(c: Condition, f: Facts) -> None:
    assert evaluate(all_of(c), f) == evaluate(c, f)
    assert evaluate(any_of(c), f) == evaluate(c, f)


@given(st.lists(conditions, min_size=1, max_size=4), st.randoms(use_true_random=False), facts)
def test_order_of_children_does_not_matter(cs: list[Condition], rnd: Any, f: Facts) -> None:
    shuffled = list(cs)
    rnd.shuffle(shuffled)
    assert evaluate(all_of(*cs), f) == evaluate(all_of(*shuffled), f)
    assert evaluate(any_of(*cs), f) == evaluate(any_of(*shuffled), f)


@given(st.lists(conditions, min_size=1, max_size=4), facts)
def test_all_and_any_are_conjunction_and_disjunction_of_the_children(cs: list[Condition], f: Facts) -> None:
    verdicts = [evaluate(c, f) for c in cs]
    assert evaluate(all_of(*cs), f) is all(verdicts)
    assert evaluate(any_of(*cs), f) is any(verdicts)
    assert evaluate(not_(cs[0]), f) is not verdicts[0]


@given(conditions, conditions, facts)
def test_excluded_middle_idempotence_and_absorption(a: Condition, b: Condition, f: Facts) -> None:
    assert evaluate(any_of(a, not_(a)), f)
    assert not evaluate(all_of(a, not_(a)), f)
    assert evaluate(all_of(a, a), f) == evaluate(a, f) == evaluate(any_of(a, a), f)
    assert evaluate(all_of(a, any_of(a, b)), f) == evaluate(a, f)
    assert evaluate(any_of(a, all_of(a, b)), f) == evaluate(a, f)


@given(st.sampled_from(FIELDS), VALUES | st.lists(VALUES, max_size=3), facts)
def test_negative_operators_are_the_complements_of_their_positives(field: str, value: Any, f: Facts) -> None:
    for positive, negative in (("eq", "ne"), ("in", "not_in"), ("exists", "not_exists")):
        yes = CONDITION.validate_python({"type": "field", "field": field, "op": positive, "value": value})
        no = CONDITION.validate_python({"type": "field", "field": field, "op": negative, "value": value})
        assert evaluate(no, f) is not evaluate(yes, f)


@given(conditions, facts)
def test_explain_gives_the_verdict_of_evaluate_and_a_reason(c: Condition, f: Facts) -> None:
    verdict, reason = explain(c, f)
    assert verdict is evaluate(c, f)
    assert isinstance(reason, str)
    assert reason
