"""The condition language of entry filters, branches and success criteria, and its evaluator.

A condition is a small tree, discriminated on `type`:

- `all` / `any` over `conditions`, `not` over `condition`;
- `field`: a standard or custom field compared with `op` and `value`;
- `tag`, `list`: the contact has the tag / is on the list;
- `engagement`: the participant `opened` or `clicked` the message of a step of this flow;
- `form_submitted`: the contact submitted the form with that key.

`evaluate` is exhaustive over the union; `explain` returns the same verdict with the reason, which the
participant trace records so a marketer can see why a branch went one way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, assert_never

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.contacts.model import Facts

FieldOp = Literal[
    "eq", "ne", "in", "not_in", "contains", "starts_with", "exists", "not_exists", "gt", "gte", "lt", "lte"
]


class _Node(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class AllOf(_Node):
    type: Literal["all"]
    conditions: list[Condition] = Field(min_length=1)


class AnyOf(_Node):
    type: Literal["any"]
    conditions: list[Condition] = Field(min_length=1)


class Not(_Node):
    type: Literal["not"]
    condition: Condition


class FieldCondition(_Node):
    type: Literal["field"]
    field: str = Field(min_length=1, description="A standard field (email, phone, …) or `fields.<name>`.")
    op: FieldOp = "eq"
    value: Any = None


class TagCondition(_Node):
    type: Literal["tag"]
    tag: str = Field(min_length=1)


class ListCondition(_Node):
    type: Literal["list"]
    list: str = Field(min_length=1)


class EngagementCondition(_Node):
    type: Literal["engagement"]
    event: Literal["opened", "clicked"]
    step: str = Field(min_length=1, description="The id of a message step of this flow.")


class FormSubmittedCondition(_Node):
    type: Literal["form_submitted"]
    form: str = Field(min_length=1)


Condition = Annotated[
    AllOf | AnyOf | Not | FieldCondition | TagCondition | ListCondition | EngagementCondition | FormSubmittedCondition,
    Field(discriminator="type"),
]


def evaluate(cond: Condition, facts: Facts) -> bool:
    return explain(cond, facts)[0]


def explain(cond: Condition, facts: Facts) -> tuple[bool, str]:
    """The verdict and a short human reason, e.g. `(False, "not opened welcome")`."""
    match cond:
        case AllOf(conditions=children):
            for child in children:
                ok, why = explain(child, facts)
                if not ok:
                    return False, why
            return True, " and ".join(explain(c, facts)[1] for c in children)
        case AnyOf(conditions=children):
            reasons = []
            for child in children:
                ok, why = explain(child, facts)
                if ok:
                    return True, why
                reasons.append(why)
            return False, " and ".join(reasons)
        case Not(condition=inner):
            ok, why = explain(inner, facts)
            return (not ok), (f"not ({why})")
        case FieldCondition():
            actual = facts.contact.get(cond.field)
            ok = _compare(cond.op, actual, cond.value)
            return ok, f"{cond.field}={actual!r} {cond.op} {cond.value!r}: {'yes' if ok else 'no'}"
        case TagCondition(tag=tag):
            ok = tag in facts.contact.tags
            return ok, f"{'has' if ok else 'lacks'} tag {tag}"
        case ListCondition(list=name):
            ok = name in facts.contact.lists
            return ok, f"{'on' if ok else 'not on'} list {name}"
        case EngagementCondition(event=event, step=step):
            ok = (event, step) in facts.engagement
            return ok, f"{'' if ok else 'not '}{event} {step}"
        case FormSubmittedCondition(form=form):
            ok = form in facts.forms_submitted
            return ok, f"{'submitted' if ok else 'did not submit'} form {form}"
        case _:
            assert_never(cond)


def _compare(op: FieldOp, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return actual not in (None, "")
    if op == "not_exists":
        return actual in (None, "")
    if actual is None:
        # A missing field matches only a negative comparison.
        return op in ("ne", "not_in")
    if op == "eq":
        return _norm(actual) == _norm(expected)
    if op == "ne":
        return _norm(actual) != _norm(expected)
    if op in ("in", "not_in"):
        options = expected if isinstance(expected, list) else [expected]
        found = _norm(actual) in [_norm(o) for o in options]
        return found if op == "in" else not found
    if op == "contains":
        if isinstance(actual, list):
            return _norm(expected) in [_norm(a) for a in actual]
        return str(_norm(expected)) in str(_norm(actual))
    if op == "starts_with":
        return str(_norm(actual)).startswith(str(_norm(expected)))
    try:
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
    except TypeError:
        # Comparing a number with text never matches rather than failing the participant.
        return False
    assert_never(op)  # type: ignore[arg-type]


def _norm(value: Any) -> Any:
    # Text compares case-insensitively: marketers type "nl" and "NL" for the same thing.
    return value.casefold() if isinstance(value, str) else value


def walk(cond: Condition) -> list[Condition]:
    """Every node of the tree, the root first."""
    match cond:
        case AllOf(conditions=children) | AnyOf(conditions=children):
            return [cond, *[n for c in children for n in walk(c)]]
        case Not(condition=inner):
            return [cond, *walk(inner)]
        case FieldCondition() | TagCondition() | ListCondition() | EngagementCondition() | FormSubmittedCondition():
            return [cond]
        case _:
            assert_never(cond)


def requires_field(cond: Condition | None, name: str) -> bool:
    """True when no contact without `name` can match `cond` (used to warn about SMS to unknown phones)."""
    match cond:
        case None:
            return False
        case FieldCondition(field=f, op=op):
            return f == name and op not in ("not_exists", "ne", "not_in")
        case AllOf(conditions=children):
            return any(requires_field(c, name) for c in children)
        case AnyOf(conditions=children):
            return all(requires_field(c, name) for c in children)
        case Not() | TagCondition() | ListCondition() | EngagementCondition() | FormSubmittedCondition():
            return False
        case _:
            assert_never(cond)
