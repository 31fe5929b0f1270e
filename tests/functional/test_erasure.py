"""GDPR erasure and export through the API.

Erasing a contact inside running flows stops its executions, removes everything keyed to it and sends
nothing more (while a contact left alone in the same flows gets its next message); its address is kept
only as a hash, so re-creating it gives a contact unsubscribed from email. Late stream records never
bring timeline items back. The export holds everything stored about a contact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.api.record_schemas import ContactExport, Erasure
from chalicelib.storage.contacts import suppression_hash
from chalicelib.storage.models import (
    MODELS,
    CrmObjectModel,
    ParkedWaitModel,
    ParticipantModel,
    SuppressionModel,
    TimelineModel,
)
from tests.conftest import example
from tests.functional.conftest import Stack, _clear_caches
from tests.functional.test_lifecycle import error_of, finished, new_flow, new_form, settle, submit
from tests.functional.test_timeline import timeline

ANNA = "anna@example.com"


@pytest.fixture
def real_time(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The stack with flow time at its real pace: a two-day wait lasts two days, ten seconds ten."""
    monkeypatch.setenv("FLOE_TIME_SCALE", "1")
    _clear_caches()
    yield stack


def reminder_flow(form: str) -> dict[str, Any]:
    """An email, then wait ten seconds for a click; without one, a reminder."""
    return {
        "name": "Reminder",
        "trigger": {"type": "form_submitted", "form": form},
        "reentry": {"mode": "never"},
        "start_at": "hello",
        "steps": [
            {"id": "hello", "type": "send_email", "subject": "Hello", "html": "<p>Hello</p>", "next": "click"},
            {"id": "click", "type": "wait_for", "event": "clicked", "step": "hello", "timeout": {"seconds": 10},
             "next": "done", "timeout_next": "reminder"},
            {"id": "reminder", "type": "send_email", "subject": "Reminder", "html": "<p>Still there?</p>",
             "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip


def waiting_at(stack: Stack, flow_id: str, participant_id: str, step: str) -> bool:
    got = stack.participant(flow_id, participant_id)
    return bool(got["status"] == "waiting" and got["current_step"] == step)


def subjects_to(stack: Stack, address: str) -> list[str]:
    return sorted(str(m["Subject"]) for m in stack.emails() if m["To"] == address)


def stored_anywhere(text: str) -> list[str]:
    """The tables holding an item that contains `text`, anywhere in it."""
    found = []
    for model in dict.fromkeys(MODELS):
        for item in model.scan():
            if text in json.dumps(item.serialize(), default=str):
                found.append(model.Meta.table_name)
    return found


def test_erasing_a_contact_inside_running_flows(real_time: Stack) -> None:
    stack = real_time
    new_form(stack, "newsletter")
    welcome = new_flow(stack, example("welcome"))
    reminder = new_flow(stack, reminder_flow("newsletter"))
    made = stack.http(
        "POST", "/contacts", {"email": ANNA, "phone": "+31612345678", "first_name": "Anna", "tags": ["vip"]}
    )
    assert made.status_code == 201, made.body
    anna = made.json_body["contact_id"]
    assert stack.http("POST", f"/contacts/{anna}/activities", {"subject": "Call Anna"}).status_code == 201
    stack.settle()
    submit(stack, "newsletter", email=ANNA)
    bob = submit(stack, "newsletter", email="bob@example.com")["contact_id"]
    stack.run_until(
        lambda: all(
            waiting_at(stack, flow, f"{contact}.1", step)
            for contact in (anna, bob)
            for flow, step in ((welcome, "pause"), (reminder, "click"))
        )
    )
    waiting = stack.participant(welcome, f"{anna}.1")["execution_arn"]
    assert stack.sfn.describe_execution(executionArn=waiting)["status"] == "RUNNING"

    erased = stack.http("DELETE", f"/contacts/{anna}")
    assert erased.status_code == 200, erased.body
    Erasure.model_validate(erased.json_body)
    removed = erased.json_body["removed"]
    assert erased.json_body["email_suppressed"] is True
    assert {k: v for k, v in removed.items() if k != "timeline_items"} == {
        "contact": 1,
        "participants": 2,
        "executions_stopped": 2,
        "waits": 1,
        "crm_objects": 1,
    }
    assert removed["timeline_items"] >= 4
    # The execution in its two-day wait is stopped. (moto lets a callback task, like the reminder flow's
    # wait for a click, run on to its timeout after a stop; the step it reaches then finds no participant.)
    stack.run_until(lambda: stack.sfn.describe_execution(executionArn=waiting)["status"] == "ABORTED")

    # Bob, left alone in the same flows, gets his reminder; Anna gets nothing more.
    settle(stack, 12)
    assert subjects_to(stack, "bob@example.com") == ["Hello", "Reminder", "Welcome, friend!"]
    assert subjects_to(stack, ANNA) == ["Hello", "Welcome, Anna!"]
    assert stack.sms() == []

    assert error_of(stack.http("GET", f"/contacts/{anna}"), 404)["code"] == "contact_not_found"
    assert error_of(stack.http("GET", f"/contacts/{anna}/timeline"), 404)["code"] == "contact_not_found"
    assert error_of(stack.http("GET", f"/contacts/{anna}/export"), 404)["code"] == "contact_not_found"
    assert error_of(stack.http("GET", f"/flows/{reminder}/participants/{anna}.1"), 404)
    assert error_of(stack.http("DELETE", f"/contacts/{anna}"), 404)["code"] == "contact_not_found"
    assert stack.http("GET", f"/contacts?email={ANNA}").json_body["contacts"] == []
    for model in (TimelineModel, CrmObjectModel, ParkedWaitModel):
        assert list(model.query(anna)) == []
    assert [p for p in ParticipantModel.scan() if p.contact_id == anna] == []
    # The address is kept only as a one-way hash.
    assert SuppressionModel.get(suppression_hash(ANNA)).reason == "erased"
    assert stored_anywhere(ANNA) == []
    assert stored_anywhere("+31612345678") == []

    again = stack.http("POST", "/contacts", {"email": ANNA, "first_name": "Anna"})
    assert again.status_code == 201, again.body
    assert again.json_body["unsubscribed"] == ["email"]
    stack.settle()
    kinds = [i["kind"] for i in timeline(stack, again.json_body["contact_id"])]
    assert kinds == ["contact_created"]


def test_late_changes_never_bring_an_erased_contact_back(stack: Stack) -> None:
    made = stack.http("POST", "/contacts", {"email": "cleo@example.com", "first_name": "Cleo"})
    cid = made.json_body["contact_id"]
    stack.http("PATCH", f"/contacts/{cid}", {"first_name": "Cleopatra", "add_tags": ["vip"]})
    assert stack.http("POST", f"/contacts/{cid}/sales", {"amount": 5, "currency": "EUR"}).status_code == 201
    # Erased before the change worker has read any of it; then the same address comes back.
    assert stack.http("DELETE", f"/contacts/{cid}").status_code == 200
    back = stack.http("POST", "/contacts", {"email": "cleo@example.com", "first_name": "Cleo"})
    assert back.status_code == 201, back.body
    stack.settle()

    new_id = back.json_body["contact_id"]
    items = timeline(stack, new_id)
    assert [i["kind"] for i in items] == ["contact_created"]
    assert items[0]["detail"]["unsubscribed"] == ["email"]
    # Whatever id the new contact got, nothing of the erased one is found under it.
    assert stack.http("GET", f"/contacts/{new_id}/sales").json_body["sales"] == []
    assert stack.http("GET", f"/contacts/{new_id}").json_body["first_name"] == "Cleo"
    assert [t for t in TimelineModel.scan() if t.contact_id != new_id] == []


def test_an_erased_address_that_comes_back_runs_through_flows_without_email(stack: Stack) -> None:
    new_form(stack, "newsletter")
    flow_id = new_flow(stack, example("welcome"))
    first = submit(stack, "newsletter", email="zed@example.com", phone="+31612345678")["contact_id"]
    stack.run_until(lambda: finished(stack, flow_id, f"{first}.1"))
    assert stack.http("DELETE", f"/contacts/{first}").status_code == 200

    back = submit(stack, "newsletter", email="zed@example.com", phone="+31612345678")
    assert back["created"] is True
    pid = f"{back['contact_id']}.1"
    stack.run_until(lambda: finished(stack, flow_id, pid), timeout=10)
    trace = stack.participant(flow_id, pid)["trace"]
    assert [(t["step"], t["event"]) for t in trace if t["step"] == "welcome"] == [("welcome", "skipped")]
    assert subjects_to(stack, "zed@example.com") == ["Welcome, friend!"]
    # Only the address is suppressed: each run ends with the SMS for people who did not open the email.
    assert len(stack.sms()) == 2


def test_only_an_editor_of_contacts_may_erase(stack: Stack) -> None:
    cid = stack.http("POST", "/contacts", {"email": "dan@example.com"}).json_body["contact_id"]
    editor = stack.key("content_editor")
    assert error_of(stack.http("DELETE", f"/contacts/{cid}", key=editor), 403)["code"] == "forbidden"
    assert error_of(stack.http("DELETE", f"/contacts/{cid}", key=None), 401)
    assert stack.http("GET", f"/contacts/{cid}").status_code == 200
    assert error_of(stack.http("DELETE", "/contacts/ct_nobody"), 404)["code"] == "contact_not_found"
    assert stack.http("DELETE", f"/contacts/{cid}", key=stack.key("flow_admin")).status_code == 200


def test_the_export_holds_everything_stored_about_the_contact(stack: Stack) -> None:
    new_form(stack, "newsletter")
    flow_id = new_flow(stack, example("welcome"))
    made = stack.http(
        "POST",
        "/contacts",
        {"email": "eva@example.com", "first_name": "Eva", "tags": ["vip"],
         "consent": {"email": {"status": "granted", "source": "form:newsletter", "at": "2026-01-05T09:00:00Z"}}},
    )  # fmt: skip
    cid = made.json_body["contact_id"]
    submit(stack, "newsletter", email="eva@example.com")
    stack.run_until(lambda: finished(stack, flow_id, f"{cid}.1"))
    stack.http("POST", f"/contacts/{cid}/activities", {"type": "meeting", "subject": "Demo"})
    stack.http("POST", f"/contacts/{cid}/sales", {"amount": "99.50", "currency": "EUR", "status": "won"})
    stack.http("POST", f"/contacts/{cid}/requests", {"subject": "Change my address", "priority": "low"})
    stack.settle()

    got = stack.http("GET", f"/contacts/{cid}/export", key=stack.key("content_editor"))
    assert got.status_code == 200, got.body
    ContactExport.model_validate(got.json_body)
    export = got.json_body
    assert export["contact"] == stack.http("GET", f"/contacts/{cid}").json_body
    proof = {"status": "granted", "source": "form:newsletter", "at": "2026-01-05T09:00:00+00:00"}
    assert export["consent"]["email"] == proof
    assert export["last_submission"]["form"] == "newsletter"
    [entry] = export["flows"]
    assert (entry["flow_id"], entry["flow_name"], entry["status"]) == (flow_id, "Welcome", "completed")
    events = [t["event"] for t in entry["trace"]]
    assert events[0] == "entered"
    assert "sent" in events
    assert events[-1] == "completed"
    assert [a["subject"] for a in export["activities"]] == ["Demo"]
    assert [(s["amount"], s["status"]) for s in export["sales"]] == [("99.50", "won")]
    assert [r["priority"] for r in export["requests"]] == ["low"]
    assert export["waiting_for"] == []
    assert export["timeline"] == timeline(stack, cid)
    kinds = {t["kind"] for t in export["timeline"]}
    assert {"contact_created", "form_submitted", "flow_entered", "message_sent", "flow_left", "sale_created"} <= kinds

    assert error_of(stack.http("GET", f"/contacts/{cid}/export", key=None), 401)
    assert error_of(stack.http("GET", "/contacts/ct_nobody/export"), 404)["code"] == "contact_not_found"
