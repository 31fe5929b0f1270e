"""A contact's timeline through the API: everything that happened to it, newest first, written only from
the change streams of contacts, participants and CRM objects. Field changes show old → new, messages
sent or skipped show why, flows entered and left, opens, form submissions and CRM objects all appear;
a redelivered change writes nothing twice; paging and the kind filter hold; roles are enforced.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from chalicelib.api.record_schemas import TimelinePage
from chalicelib.storage.models import ContactModel, TimelineModel
from tests.functional.conftest import REGION, Stack, body_of, change_pump, links
from tests.functional.test_lifecycle import error_of, finished, new_flow, new_form, submit


def story_flow(form: str) -> dict[str, Any]:
    """An SMS the contact cannot get (no phone), an email, a wait, a branch on the open, the end."""
    return {
        "name": "Story",
        "trigger": {"type": "form_submitted", "form": form},
        "reentry": {"mode": "never"},
        "start_at": "text",
        "steps": [
            {"id": "text", "type": "send_sms", "label": "Welcome SMS", "text": "Hi!", "next": "hello"},
            {"id": "hello", "type": "send_email", "label": "Welcome email", "subject": "Hello",
             "html": "<p>Hello</p>", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": {"days": 1}, "next": "check"},
            {"id": "check", "type": "branch", "condition": {"type": "engagement", "event": "opened", "step": "hello"},
             "yes": "done", "no": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip


def timeline(stack: Stack, contact_id: str, query: str = "", key: str | None = "admin") -> list[dict[str, Any]]:
    """Every item, page by page (newest first), each page checked against the documented model."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = "&".join(p for p in (query, f"cursor={cursor}" if cursor else "") if p)
        got = stack.http("GET", f"/contacts/{contact_id}/timeline" + (f"?{params}" if params else ""), key=key)
        assert got.status_code == 200, got.body
        TimelinePage.model_validate(got.json_body)
        items += got.json_body["timeline"]
        cursor = got.json_body["next_cursor"]
        if cursor is None:
            return items


def of_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [i for i in items if i["kind"] == kind]


def test_the_timeline_tells_what_happened_to_the_contact(stack: Stack) -> None:
    stack.http("POST", "/fields", {"name": "plan", "type": "choice", "options": ["Basic", "Pro"]})
    new_form(stack, "newsletter")
    flow_id = new_flow(stack, story_flow("newsletter"))
    created = stack.http(
        "POST",
        "/contacts",
        {"email": "anna@example.com", "first_name": "Ann", "fields": {"plan": "basic"}, "tags": ["lead-magnet"],
         "consent": {"email": {"status": "granted", "source": "form:newsletter"}}},
    )  # fmt: skip
    assert created.status_code == 201, created.body
    cid = created.json_body["contact_id"]
    # Routes only write the contact: the timeline comes from its change stream.
    assert timeline(stack, cid) == []
    stack.settle()
    assert [i["kind"] for i in timeline(stack, cid)] == ["consent_changed", "contact_created"]

    patched = stack.http(
        "PATCH",
        f"/contacts/{cid}",
        {"first_name": "Anna", "fields": {"plan": "Pro"}, "add_tags": ["vip"], "remove_tags": ["lead-magnet"],
         "add_lists": ["news"]},
    )  # fmt: skip
    assert patched.status_code == 200, patched.body
    submit(stack, "newsletter", email="anna@example.com", company="Shop BV")
    participant = f"{cid}.1"
    stack.run_until(lambda: finished(stack, flow_id, participant))
    html = body_of(stack.emails()[0])
    pixel = stack.http("GET", links(html, "o")[0], key=None, headers={"Accept": "image/gif"})
    assert pixel.status_code == 200, pixel.body
    sale = stack.http("POST", f"/contacts/{cid}/sales", {"amount": "49.00", "currency": "EUR", "product": "Pro"})
    assert sale.status_code == 201, sale.body
    won = stack.http("PATCH", f"/contacts/{cid}/sales/{sale.json_body['object_id']}", {"status": "won"})
    assert won.status_code == 200, won.body
    follow_up = {"type": "call", "subject": "Welcome call", "due_date": "2026-05-04"}
    assert stack.http("POST", f"/contacts/{cid}/activities", follow_up).status_code == 201
    assert stack.http("POST", f"/contacts/{cid}/requests", {"subject": "Invoice address"}).status_code == 201
    withdrawn = stack.http(
        "PATCH", f"/contacts/{cid}", {"consent": {"email": {"status": "withdrawn", "source": "phone call"}}}
    )
    assert withdrawn.status_code == 200, withdrawn.body
    stack.settle()

    items = timeline(stack, cid)
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    assert len({i["id"] for i in items}) == len(items)

    changes = {(i["detail"]["field"], i["detail"]["old"], i["detail"]["new"]) for i in of_kind(items, "field_changed")}
    assert {("first_name", "Ann", "Anna"), ("fields.plan", "Basic", "Pro"), ("company", None, "Shop BV")} <= changes
    assert [i["detail"]["tag"] for i in of_kind(items, "tag_added")] == ["vip"]
    assert [i["detail"]["tag"] for i in of_kind(items, "tag_removed")] == ["lead-magnet"]
    assert [i["detail"]["list"] for i in of_kind(items, "list_added")] == ["news"]
    assert [i["detail"]["form"] for i in of_kind(items, "form_submitted")] == ["newsletter"]
    consents = of_kind(items, "consent_changed")
    assert [(c["detail"]["new"]["status"], c["detail"]["new"]["source"]) for c in consents] == [
        ("withdrawn", "phone call"),
        ("granted", "form:newsletter"),
    ]
    assert [i["detail"]["channel"] for i in of_kind(items, "unsubscribed")] == ["email"]

    entered = of_kind(items, "flow_entered")
    assert len(entered) == 1
    assert entered[0]["detail"]["flow_id"] == flow_id
    assert "Story" in entered[0]["summary"]
    skipped = of_kind(items, "message_skipped")
    assert [(s["detail"]["step"], s["detail"]["channel"]) for s in skipped] == [("text", "SMS")]
    assert skipped[0]["detail"]["detail"] == "the contact has no valid international phone number"
    assert "no valid international phone number" in skipped[0]["summary"]
    sent = of_kind(items, "message_sent")
    assert [(s["detail"]["step"], s["detail"]["channel"]) for s in sent] == [("hello", "Email")]
    assert of_kind(items, "waiting")
    assert [b["detail"]["step"] for b in of_kind(items, "branch")] == ["check"]
    left = of_kind(items, "flow_left")
    assert [(x["detail"]["event"], x["detail"]["detail"]) for x in left] == [("completed", "reached the end")]
    opened = of_kind(items, "opened")
    assert [(o["detail"]["step"], o["detail"]["participant_id"]) for o in opened] == [("hello", participant)]

    assert [i["detail"]["data"]["status"] for i in of_kind(items, "sale_created")] == ["open"]
    [sale_won] = of_kind(items, "sale_changed")
    assert sale_won["detail"]["changes"] == {"status": {"old": "open", "new": "won"}}
    assert "Sale of 49.00 EUR: Pro (won)" in sale_won["summary"]
    assert [a["detail"]["data"]["subject"] for a in of_kind(items, "activity_created")] == ["Welcome call"]
    assert [r["detail"]["object_kind"] for r in of_kind(items, "request_created")] == ["request"]

    # Order tells the story: created before entering, entering before the email, the email before leaving.
    position = {i["id"]: n for n, i in enumerate(items)}
    oldest_first = [of_kind(items, k)[-1]["id"] for k in ("contact_created", "flow_entered", "message_sent")]
    oldest_first += [left[0]["id"]]
    assert [position[i] for i in oldest_first] == sorted((position[i] for i in oldest_first), reverse=True)


def test_a_redelivered_change_writes_nothing_twice(stack: Stack) -> None:
    cid = stack.http("POST", "/contacts", {"email": "bob@example.com"}).json_body["contact_id"]
    stack.http("PATCH", f"/contacts/{cid}", {"first_name": "Bob", "add_tags": ["vip"]})
    stack.http("POST", f"/contacts/{cid}/requests", {"subject": "Where is my parcel?"})
    one_email = {
        "name": "One email",
        "trigger": {"type": "manual"},
        "start_at": "hello",
        "steps": [
            {"id": "hello", "type": "send_email", "subject": "Hello", "html": "<p>Hi</p>", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
    flow_id = new_flow(stack, one_email)
    enrolled = stack.http("POST", f"/flows/{flow_id}/enrollments", {"contact_ids": [cid]})
    assert enrolled.status_code == 200, enrolled.body
    stack.run_until(lambda: finished(stack, flow_id, f"{cid}.1"))
    pixel = stack.http("GET", links(body_of(stack.emails()[0]), "o")[0], key=None, headers={"Accept": "image/gif"})
    assert pixel.status_code == 200
    stack.settle()
    before = timeline(stack, cid)
    assert {"contact_created", "field_changed", "tag_added", "request_created", "flow_entered", "message_sent",
            "flow_left", "opened"} <= {i["kind"] for i in before}  # fmt: skip

    # A second reader from the start of the streams: every record is delivered again.
    again = change_pump(REGION, stack.sqs, stack.changes_dlq_url)
    assert again.drain() >= 6
    while again.drain():
        pass
    assert timeline(stack, cid) == before
    assert sum(1 for _ in TimelineModel.query(cid)) == len(before)


def test_the_timeline_pages_filters_and_checks_who_asks(stack: Stack) -> None:
    cid = stack.http("POST", "/contacts", {"email": "cleo@example.com"}).json_body["contact_id"]
    other = stack.http("POST", "/contacts", {"email": "dan@example.com"}).json_body["contact_id"]
    for n in range(4):
        stack.http("PATCH", f"/contacts/{cid}", {"first_name": f"Cleo {n}", "add_tags": [f"t{n}"]})
    stack.settle()
    everything = timeline(stack, cid)
    assert len(everything) == 9
    assert timeline(stack, cid, "limit=2") == everything
    tags = timeline(stack, cid, "kind=tag_added&limit=3")
    assert [i["detail"]["tag"] for i in tags] == ["t3", "t2", "t1", "t0"]
    both = timeline(stack, cid, "kind=tag_added,contact_created")
    assert [i["kind"] for i in both] == ["tag_added"] * 4 + ["contact_created"]
    assert timeline(stack, cid, "kind=sale_created") == []

    editor = stack.key("content_editor")
    assert timeline(stack, cid, key=editor) == everything
    assert error_of(stack.http("GET", f"/contacts/{cid}/timeline", key=None), 401)
    assert error_of(stack.http("GET", "/contacts/ct_nobody/timeline"), 404)["code"] == "contact_not_found"
    assert error_of(stack.http("GET", f"/contacts/{cid}/timeline?kind=party"), 400)["code"] == "invalid_kind"
    assert error_of(stack.http("GET", f"/contacts/{cid}/timeline?since=2020"), 400)["code"] == "unknown_parameter"
    cursor = stack.http("GET", f"/contacts/{cid}/timeline?limit=1").json_body["next_cursor"]
    assert cursor
    assert error_of(stack.http("GET", f"/contacts/{other}/timeline?cursor={cursor}"), 400)["code"] == ("invalid_cursor")


def test_a_change_that_fails_every_retry_is_dead_lettered_and_the_stream_moves_on(stack: Stack) -> None:
    # An item no contact model can read (written around the API): its change record fails every time.
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=ContactModel.Meta.table_name,
        Item={"contact_id": {"S": "ct_broken"}, "created_at": {"S": "not a time"}, "updated_at": {"S": "-"}},
    )
    stack.settle()
    after = stack.http("POST", "/contacts", {"email": "after@example.com"}).json_body["contact_id"]
    stack.settle()
    assert [i["kind"] for i in timeline(stack, after)] == ["contact_created"]
    got = stack.sqs.receive_message(QueueUrl=stack.changes_dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(got) == 1
    failure = json.loads(got[0]["Body"])
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert "-contacts/stream/" in info["streamArn"]
