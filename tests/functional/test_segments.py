"""Saved segments through the API, and the segment index against evaluating every contact.

The index is written by the change worker from the contacts stream, so tests that create contacts
through the API call `stack.settle()` before asking a segment anything. The property test at the end
drives the storage and the use cases directly on moto, so many examples fit in seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pydantic import TypeAdapter

from chalicelib.bootstrap import build_runtime
from chalicelib.config import from_env
from chalicelib.contacts.conditions import Condition, evaluate
from chalicelib.engine.changes import Change
from chalicelib.engine.segments import count_matching, facts_of, index_change, select
from chalicelib.storage import models
from chalicelib.storage.models import ContactModel, SegmentIndexModel
from chalicelib.storage.paging import encode_cursor
from tests.functional.conftest import STACK_ENV, Stack
from tests.strategies import combined

CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


def error_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.body
    return dict(answer.json_body["error"])


def new_contact(stack: Stack, **body: Any) -> str:
    got = stack.http("POST", "/contacts", body)
    assert got.status_code == 201, got.body
    return str(got.json_body["contact_id"])


def new_segment(stack: Stack, name: str, condition: dict[str, Any]) -> str:
    got = stack.http("POST", "/segments", {"name": name, "condition": condition})
    assert got.status_code == 201, got.body
    return str(got.json_body["segment_id"])


def members(stack: Stack, segment_id: str, limit: int = 50) -> list[str]:
    """Every member's email, following the cursor to the end."""
    out: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        path = f"/segments/{segment_id}/contacts?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        got = stack.http("GET", path)
        assert got.status_code == 200, got.body
        assert len(got.json_body["contacts"]) <= limit
        out += [c["email"] for c in got.json_body["contacts"]]
        cursor = got.json_body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("the pages did not end")


def count(stack: Stack, segment_id: str) -> dict[str, Any]:
    got = stack.http("GET", f"/segments/{segment_id}/count")
    assert got.status_code == 200, got.body
    return dict(got.json_body)


TAG_VIP = {"type": "tag", "tag": "vip"}
DUTCH_LEADS = {
    "type": "all",
    "conditions": [
        {"type": "field", "field": "language", "op": "eq", "value": "NL"},
        {"type": "field", "field": "category", "op": "in", "value": ["lead"]},
    ],
}


def test_segment_crud_and_members_follow_contact_changes(stack: Stack) -> None:
    anna = new_contact(stack, email="anna@example.com", language="nl", category="lead", tags=["vip"])
    new_contact(stack, email="bert@example.com", language="nl", category="customer", tags=["vip"])
    new_contact(stack, email="cleo@example.com", language="en", category="lead")
    stack.settle()

    vip = new_segment(stack, "VIPs", TAG_VIP)
    got = stack.http("GET", f"/segments/{vip}")
    assert got.status_code == 200
    assert got.json_body["name"] == "VIPs"
    assert got.json_body["served_by"] == "index"
    assert got.json_body["condition"] == {"type": "tag", "tag": "vip"}
    assert sorted(members(stack, vip)) == ["anna@example.com", "bert@example.com"]
    assert count(stack, vip)["count"] == 2

    dutch = new_segment(stack, "Dutch leads", DUTCH_LEADS)
    assert members(stack, dutch) == ["anna@example.com"]

    # Anna becomes a customer and loses the tag: she leaves both segments once the change is indexed.
    patched = stack.http("PATCH", f"/contacts/{anna}", {"category": "customer", "remove_tags": ["vip"]})
    assert patched.status_code == 200, patched.body
    stack.settle()
    assert members(stack, vip) == ["bert@example.com"]
    assert count(stack, vip)["count"] == 1
    assert members(stack, dutch) == []
    assert count(stack, dutch)["count"] == 0

    # Cleo switches to Dutch: she joins the Dutch leads.
    cleo = stack.http("GET", "/contacts?email=cleo@example.com").json_body["contacts"][0]["contact_id"]
    assert stack.http("PATCH", f"/contacts/{cleo}", {"language": "nl"}).status_code == 200
    stack.settle()
    assert members(stack, dutch) == ["cleo@example.com"]

    # Renaming and changing the condition, then listing and deleting.
    changed = stack.http("PUT", f"/segments/{vip}", {"name": "Customers", "condition": {
        "type": "field", "field": "category", "value": "Customer"}})  # fmt: skip
    assert changed.status_code == 200, changed.body
    assert changed.json_body["name"] == "Customers"
    assert sorted(members(stack, vip)) == ["anna@example.com", "bert@example.com"]
    listed = stack.http("GET", "/segments?limit=1")
    assert listed.status_code == 200
    assert len(listed.json_body["segments"]) == 1
    rest = stack.http("GET", f"/segments?cursor={listed.json_body['next_cursor']}")
    names = {s["name"] for s in listed.json_body["segments"] + rest.json_body["segments"]}
    assert names == {"Customers", "Dutch leads"}
    assert stack.http("DELETE", f"/segments/{vip}").status_code == 204
    error_of(stack.http("GET", f"/segments/{vip}"), 404)
    assert [s["segment_id"] for s in stack.http("GET", "/segments").json_body["segments"]] == [dutch]


def test_an_erased_contact_leaves_its_segments(stack: Stack) -> None:
    gone = new_contact(stack, email="gone@example.com", tags=["vip"])
    new_contact(stack, email="stays@example.com", tags=["vip"])
    stack.settle()
    vip = new_segment(stack, "VIPs", TAG_VIP)
    assert count(stack, vip)["count"] == 2
    assert stack.http("DELETE", f"/contacts/{gone}").status_code in (200, 202, 204)
    stack.settle()
    assert count(stack, vip)["count"] == 1
    assert members(stack, vip) == ["stays@example.com"]
    assert [i.entry for i in SegmentIndexModel.scan() if i.contact_id == gone] == []


def test_members_page_across_pages_in_every_plan(stack: Stack) -> None:
    for i in range(7):
        new_contact(
            stack,
            email=f"p{i}@example.com",
            tags=["vip"] if i % 2 == 0 else ["regular"],
            category="lead" if i < 5 else "customer",
        )
    stack.settle()
    everyone_vip = sorted(f"p{i}@example.com" for i in range(0, 7, 2))
    exact = new_segment(stack, "vip", TAG_VIP)
    union = new_segment(stack, "vip or customer", {"type": "any", "conditions": [TAG_VIP, {
        "type": "field", "field": "category", "value": "customer"}]})  # fmt: skip
    candidates = new_segment(stack, "vip leads", {"type": "all", "conditions": [TAG_VIP, {
        "type": "field", "field": "category", "value": "lead"}]})  # fmt: skip
    scan = new_segment(stack, "not vip", {"type": "not", "condition": TAG_VIP})
    for limit in (1, 2, 3, 50):
        assert sorted(members(stack, exact, limit)) == everyone_vip
        assert sorted(members(stack, union, limit)) == sorted({*everyone_vip, "p5@example.com", "p6@example.com"})
        assert sorted(members(stack, candidates, limit)) == ["p0@example.com", "p2@example.com", "p4@example.com"]
        assert sorted(members(stack, scan, limit)) == ["p1@example.com", "p3@example.com", "p5@example.com"]
    # A page never repeats a contact of an earlier page.
    listed = members(stack, union, 2)
    assert len(listed) == len(set(listed))


def test_contact_list_filters_are_served_by_the_index(stack: Stack) -> None:
    anna = new_contact(stack, email="anna@example.com", category="lead")
    new_contact(stack, email="bert@example.com", category="lead", tags=["vip"])
    stack.settle()

    def emails(query: str) -> list[str]:
        got = stack.http("GET", f"/contacts?{query}")
        assert got.status_code == 200, got.body
        return sorted(c["email"] for c in got.json_body["contacts"])

    assert emails("category=LEAD") == ["anna@example.com", "bert@example.com"]
    assert emails("tag=vip&category=lead") == ["bert@example.com"]
    assert stack.http("PATCH", f"/contacts/{anna}", {"add_tags": ["vip"]}).status_code == 200
    # The index follows the change stream: until it is delivered, the filter answers from before.
    assert emails("tag=vip") == ["bert@example.com"]
    stack.settle()
    assert emails("tag=vip") == ["anna@example.com", "bert@example.com"]
    assert error_of(stack.http("GET", "/contacts?tag="), 400)["code"] == "invalid_filter"


def test_count_says_whether_the_index_or_a_scan_answered(stack: Stack) -> None:
    for i in range(6):
        new_contact(stack, email=f"c{i}@example.com", tags=["vip"] if i < 4 else [], company=f"Co{i % 2}")
    stack.settle()
    exact = count(stack, new_segment(stack, "vip", TAG_VIP))
    assert exact["count"] == 4
    assert exact["served_by"] == "index"
    assert exact["index_entries"] == ["tag:vip"]
    assert exact["contacts_evaluated"] == 0
    checked = count(stack, new_segment(stack, "vip at Co0", {"type": "all", "conditions": [
        TAG_VIP, {"type": "field", "field": "company", "value": "co0"}]}))  # fmt: skip
    assert checked["count"] == 2
    assert checked["served_by"] == "index"
    assert checked["contacts_evaluated"] == 4  # the four VIPs, read and checked
    scanned = count(stack, new_segment(stack, "at Co1", {"type": "field", "field": "company", "value": "CO1"}))
    assert scanned["count"] == 3
    assert scanned["served_by"] == "scan"
    assert scanned["index_entries"] == []
    assert scanned["contacts_evaluated"] == 6


def test_bad_segments_are_refused_with_every_problem(stack: Stack) -> None:
    bad_type = error_of(stack.http("POST", "/segments", {"name": "x", "condition": {"type": "colour"}}), 422)
    assert bad_type["code"] == "invalid_segment"
    assert [d["path"] for d in bad_type["details"]] == ["/condition/type"]

    nested = {"type": "all", "conditions": [TAG_VIP, {"type": "tag"}, {"type": "list", "list": "x", "extra": 1}]}
    problems = error_of(stack.http("POST", "/segments", {"name": "", "condition": nested}), 422)["details"]
    assert {(d["path"], d["code"]) for d in problems} == {
        ("/name", "invalid"),
        ("/condition/conditions/1/tag", "required"),
        ("/condition/conditions/2/extra", "unknown_field"),
    }

    engagement = {"type": "any", "conditions": [TAG_VIP, {"type": "engagement", "event": "opened", "step": "s"}]}
    refused = error_of(stack.http("POST", "/segments", {"name": "openers", "condition": engagement}), 422)
    assert refused["details"][0]["code"] == "engagement_in_segment"
    assert refused["details"][0]["path"] == "/condition/conditions/1"

    unknown = {"type": "field", "field": "colour", "value": "red"}
    refused = error_of(stack.http("POST", "/segments", {"name": "red", "condition": unknown}), 422)
    assert refused["details"] == [
        {"path": "/condition/field", "code": "unknown_field", "message": refused["details"][0]["message"]}
    ]

    deep: dict[str, Any] = TAG_VIP
    for _ in range(20):
        deep = {"type": "not", "condition": deep}
    assert error_of(stack.http("POST", "/segments", {"name": "deep", "condition": deep}), 422)["details"][0][
        "code"
    ] == ("too_deep")
    error_of(stack.http("POST", "/segments", {"name": "no condition"}), 422)
    error_of(stack.http("POST", "/segments", [TAG_VIP]), 422)
    error_of(stack.http("POST", "/segments", raw="{not json"), 400)
    # Nothing was saved.
    assert stack.http("GET", "/segments").json_body["segments"] == []

    segment = new_segment(stack, "VIPs", TAG_VIP)
    error_of(stack.http("PUT", f"/segments/{segment}", {"name": "VIPs", "condition": engagement}), 422)
    assert stack.http("GET", f"/segments/{segment}").json_body["condition"] == TAG_VIP
    error_of(stack.http("GET", f"/segments/{segment}/contacts?cursor=bm90LWEtY3Vyc29y"), 400)
    # A cursor of another list is refused, not fed to the database.
    of_segments = encode_cursor({"kind": {"S": "segment"}, "item_id": {"S": segment}})
    assert error_of(stack.http("GET", f"/segments/{segment}/contacts?cursor={of_segments}"), 400)["code"] == (
        "invalid_cursor"
    )
    of_contacts = encode_cursor({"contact_id": {"S": "ct_1"}})
    assert error_of(stack.http("GET", f"/segments?cursor={of_contacts}"), 400)["code"] == "invalid_cursor"
    error_of(stack.http("GET", f"/segments/{segment}/contacts?limit=0"), 400)


def test_unknown_segments_are_404_and_roles_are_checked(stack: Stack) -> None:
    for missing in ("sg_0123456789abcdef", "sg_missing", "x" * 2000):
        for method, path in (
            ("GET", f"/segments/{missing}"),
            ("GET", f"/segments/{missing}/contacts"),
            ("GET", f"/segments/{missing}/count"),
            ("DELETE", f"/segments/{missing}"),
        ):
            assert error_of(stack.http(method, path), 404)["code"] == "segment_not_found"
        put = stack.http("PUT", f"/segments/{missing}", {"name": "x", "condition": TAG_VIP})
        assert error_of(put, 404)["code"] == "segment_not_found"

    # Reading needs contacts.view, writing contacts.edit.
    segment = new_segment(stack, "VIPs", TAG_VIP)
    editor = stack.key("content_editor")
    assert stack.http("GET", f"/segments/{segment}", key=editor).status_code == 200
    assert stack.http("GET", f"/segments/{segment}/count", key=editor).status_code == 200
    error_of(stack.http("POST", "/segments", {"name": "x", "condition": TAG_VIP}, key=editor), 403)
    error_of(stack.http("DELETE", f"/segments/{segment}", key=editor), 403)
    error_of(stack.http("GET", "/segments", key=None), 401)
    assert stack.http("GET", f"/segments/{segment}").status_code == 200


# --- the index against evaluating every contact -------------------------------------------------------------

TAGS = ["vip", "VIP", "new"]
LISTS = ["news", "offers"]
TEXTS = ["nl", "NL", "en", "Lead", "lead", "#1", "a=b", "straße", "STRASSE", "x" * 1100, ""]
NUMBERS = [0, 1, 1.0, 1.5, -2, True, False, 10**16]
VALUES = st.sampled_from([*TEXTS, *NUMBERS])
FIELDS = ["category", "language", "timezone", "owner_email", "company", "fields.plan", "fields.score"]

contacts = st.fixed_dictionaries(
    {
        "tags": st.sets(st.sampled_from(TAGS), max_size=2),
        "lists": st.sets(st.sampled_from(LISTS), max_size=2),
        "forms": st.sets(st.sampled_from(["demo", "Demo"]), max_size=1),
        "standard": st.dictionaries(
            st.sampled_from(["category", "language", "timezone", "owner_email", "company"]),
            st.sampled_from(TEXTS),
            max_size=3,
        ),
        "fields": st.dictionaries(st.sampled_from(["plan", "score"]), VALUES, max_size=2),
    }
)

leaves = st.one_of(
    st.builds(lambda t: {"type": "tag", "tag": t}, st.sampled_from(TAGS)),
    st.builds(lambda n: {"type": "list", "list": n}, st.sampled_from(LISTS)),
    st.builds(lambda f: {"type": "form_submitted", "form": f}, st.sampled_from(["demo", "Demo"])),
    st.builds(
        lambda f, op, v: {"type": "field", "field": f, "op": op, "value": v},
        st.sampled_from(FIELDS),
        st.sampled_from(["eq", "in", "ne", "contains", "exists"]),
        st.one_of(VALUES, st.lists(VALUES, max_size=3)),
    ),
)
conditions = combined(leaves, max_leaves=5)


@pytest.fixture
def storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Just the tables on moto, and the runtime bound to them."""
    for name, value in STACK_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        rt = build_runtime(from_env(dict(STACK_ENV)))
        models.create_tables()
        yield rt


def _item(i: int, spec: dict[str, Any]) -> ContactModel:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    item = ContactModel(contact_id=f"ct_{i:04d}", created_at=now, updated_at=now, fields=dict(spec["fields"]))
    for name, value in spec["standard"].items():
        setattr(item, name, value)
    item.tags, item.lists, item.forms_submitted = set(spec["tags"]), set(spec["lists"]), set(spec["forms"])
    return item


def _clear() -> None:
    for model in (ContactModel, SegmentIndexModel):
        with model.batch_write() as batch:
            for item in model.scan():
                batch.delete(item)


def test_an_indexed_query_returns_what_evaluating_every_contact_returns(storage: Any) -> None:
    rt = storage

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        before=st.lists(contacts, min_size=1, max_size=8),
        after=st.lists(st.one_of(st.none(), contacts), max_size=8),
        doc=conditions,
        limit=st.integers(1, 4),
    )
    def check(
        before: list[dict[str, Any]], after: list[dict[str, Any] | None], doc: dict[str, Any], limit: int
    ) -> None:
        _clear()
        at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        items = {}
        # Contacts are created, then some changed or erased, each change indexed as the stream delivers it.
        for i, spec in enumerate(before):
            item = _item(i, spec)
            item.save()
            index_change(rt, Change("contacts", None, item, at, f"c{i}"))
            items[item.contact_id] = item
        for i, change in enumerate(after[: len(before)]):
            old = items[f"ct_{i:04d}"]
            if change is None:
                old.delete()
                index_change(rt, Change("contacts", old, None, at, f"d{i}"))
                del items[old.contact_id]
            else:
                new = _item(i, change)
                new.save()
                index_change(rt, Change("contacts", old, new, at, f"u{i}"))
                # A redelivered change writes the same items again.
                index_change(rt, Change("contacts", old, new, at, f"u{i}"))
                items[new.contact_id] = new
        cond = CONDITION.validate_python(doc)
        expected = sorted(c.contact_id for c in ContactModel.scan() if evaluate(cond, facts_of(c)))

        assert count_matching(rt, cond).count == len(expected)
        paged: list[str] = []
        cursor = None
        for _ in range(50):
            page = select(rt, cond, cursor=cursor, limit=limit)
            assert len(page.items) <= limit
            paged += [c.contact_id for c in page.items]
            cursor = page.cursor
            if cursor is None:
                break
        assert sorted(paged) == expected
        assert len(paged) == len(set(paged))

    check()
