"""The demo-request example end to end, through the real compiled state machine in moto.

Form submission → tag and stage → alert to the contact's owner → CRM webhook (a real local HTTP
server) → invite → wait for a click on the invite. A click brings "See you soon"; no click brings a
reminder, a wait until a date and a jump back to the wait, until the contact becomes a customer (a
success criterion with `exit`) and leaves the flow. Everything is checked the way a user would: HTTP
answers, what moto's SES recorded, what the webhook receiver got.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import example
from tests.functional.conftest import Stack, body_of, links
from tests.http_server import QuietHandler, serving

OWNER = "sam.seller@example.com"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    url: str
    calls: list[Received] = field(default_factory=list)


@pytest.fixture
def crm() -> Iterator[Receiver]:
    """A real HTTP server on a free local port that records every webhook call and answers 200."""
    calls: list[Received] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.body()
            calls.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)))
            self.reply(200)

    with serving(Handler) as base:
        yield Receiver(f"{base}/hooks/demo", calls)


def demo_doc(crm_url: str, *, goal: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = example("demo-request")
    for step in doc["steps"]:
        if step["id"] == "crm":
            step["url"] = crm_url
    if goal is not None:
        doc["goals"] = [{"id": "became_customer", "condition": goal, "exit": True}]
    return doc


def start_demo(stack: Stack, doc: dict[str, Any]) -> str:
    assert (
        stack.http("POST", "/forms", {"key": "demo-request", "name": "Demo request", "owner_email": OWNER}).status_code
        == 201
    )
    created = stack.http("POST", "/flows", doc)
    assert created.status_code == 201, created.body
    flow_id = str(created.json_body["id"])
    activated = stack.http("POST", f"/flows/{flow_id}/activate")
    assert activated.status_code == 200, activated.body
    return flow_id


def request_demo(stack: Stack, **extra: str) -> Any:
    fields = {
        "email": "dana@example.com",
        "first_name": "Dana",
        "last_name": "Diaz",
        "company": "Acme",
        # A visitor cannot aim the owner alert: the form's owner (set by the marketer) wins.
        "owner_email": "stranger@evil.test",
        **extra,
    }
    answer = stack.http("POST", "/forms/demo-request/submissions", fields)
    assert answer.status_code == 202, answer.body
    return answer


def waiting_at(stack: Stack, flow_id: str, pid: str, step: str) -> bool:
    got = stack.participant(flow_id, pid)
    return got["status"] == "waiting" and got["current_step"] == step


def finished(stack: Stack, flow_id: str, pid: str) -> bool:
    return stack.participant(flow_id, pid)["status"] in ("completed", "exited", "failed")


def closed_executions(stack: Stack) -> list[dict[str, Any]]:
    """The executions once none is running: moto closes one a moment after its last task is answered."""
    stack.run_until(lambda: not stack.executions("RUNNING"), timeout=5)
    return stack.executions()


def subjects(stack: Stack) -> list[str]:
    return [str(m["Subject"]) for m in stack.emails()]


def test_a_click_on_the_invite_brings_see_you_soon(stack: Stack, crm: Receiver) -> None:
    flow_id = start_demo(stack, demo_doc(crm.url))
    answer = request_demo(stack)
    assert answer.json_body["flows"] == [flow_id]
    contact_id = answer.json_body["contact_id"]
    pid = f"{contact_id}.1"

    stack.run_until(lambda: waiting_at(stack, flow_id, pid, "clicked"))

    # The contact is tagged and staged.
    contact = stack.http("GET", f"/contacts/{contact_id}")
    assert contact.status_code == 200
    assert "demo-requested" in contact.json_body["tags"]
    assert contact.json_body["fields"]["stage"] == "lead"

    # The owner is alerted: an internal message, so no unsubscribe headers.
    alert, invite = stack.emails()
    assert alert["To"] == OWNER
    assert alert["Subject"] == "Demo request from dana@example.com"
    assert "Dana Diaz of Acme asked for a demo." in body_of(alert, "plain")
    assert alert["List-Unsubscribe"] is None
    assert alert["List-Unsubscribe-Post"] is None

    # The CRM got the contact and the step's payload, with a key to drop repeats by.
    assert len(crm.calls) == 1
    call = crm.calls[0]
    assert call.path == "/hooks/demo"
    assert call.headers["content-type"] == "application/json"
    assert call.headers["idempotency-key"]
    assert call.body["flow_id"] == flow_id
    assert call.body["step"] == "crm"
    assert call.body["participant_id"] == pid
    assert call.body["payload"] == {"source": "floe"}
    assert call.body["contact"]["id"] == contact_id
    assert call.body["contact"]["email"] == "dana@example.com"
    assert call.body["contact"]["company"] == "Acme"

    # The invite goes to the contact, with one-click unsubscribe.
    assert invite["To"] == "dana@example.com"
    assert invite["Subject"] == "Pick a time for your demo"
    assert invite["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Dana clicks the booking link while the flow waits for it.
    (book,) = [path for path in links(body_of(invite), "c")]
    clicked = stack.http("GET", book)
    assert clicked.status_code == 302
    assert clicked.headers["Location"] == "https://example.com/book"

    stack.run_until(lambda: finished(stack, flow_id, pid))
    got = stack.participant(flow_id, pid)
    assert got["status"] == "completed", got
    assert got["reason"] == "end"
    assert got["current_step"] == "done"
    assert got["last_message"]["step"] == "thanks"
    assert "clicked:invite" in got["engagement"]
    assert subjects(stack) == ["Demo request from dana@example.com", "Pick a time for your demo", "See you soon"]
    thanks = stack.emails()[2]
    assert thanks["To"] == "dana@example.com"
    assert "Thanks for booking, Dana." in body_of(thanks)
    assert len(crm.calls) == 1

    steps = [(t["step"], t["event"]) for t in got["trace"]]
    assert steps[:6] == [
        (None, "entered"),
        ("tag", "updated"),
        ("alert", "sent"),
        ("crm", "sent"),
        ("invite", "sent"),
        ("clicked", "waiting"),
    ]
    assert (None, "event") in steps  # the click resumed the wait
    assert steps[-2:] == [("thanks", "sent"), ("done", "completed")]
    assert [e["status"] for e in closed_executions(stack)] == ["SUCCEEDED"]


def test_without_a_click_reminders_until_the_contact_becomes_a_customer(stack: Stack, crm: Receiver) -> None:
    paid = {"type": "field", "field": "fields.plan", "op": "eq", "value": "paid"}
    flow_id = start_demo(stack, demo_doc(crm.url, goal=paid))
    answer = request_demo(stack)
    contact_id = answer.json_body["contact_id"]
    pid = f"{contact_id}.1"

    # Nobody clicks: the wait times out, a reminder goes out, the participant waits until the
    # morning date and jumps back to waiting for a click.
    def back_at_the_wait() -> bool:
        return "Still interested in a demo?" in subjects(stack) and waiting_at(stack, flow_id, pid, "clicked")

    stack.run_until(back_at_the_wait)

    # Dana becomes a paying customer; sending the form again updates the contact but does not
    # enroll a second time.
    again = request_demo(stack, plan="paid")
    assert again.json_body["contact_id"] == contact_id
    assert again.json_body["created"] is False
    assert stack.http("GET", f"/contacts/{contact_id}").json_body["fields"]["plan"] == "paid"

    stack.run_until(lambda: finished(stack, flow_id, pid))
    got = stack.participant(flow_id, pid)
    assert got["status"] == "completed", got
    assert got["reason"] == "goal:became_customer"
    listed = stack.http("GET", f"/flows/{flow_id}/participants").json_body["participants"]
    assert [p["participant_id"] for p in listed] == [pid]
    assert [e["status"] for e in closed_executions(stack)] == ["SUCCEEDED"]

    sent = subjects(stack)
    assert "See you soon" not in sent
    reminders = sent.count("Still interested in a demo?")
    assert reminders >= 1
    assert sent[:3] == [
        "Demo request from dana@example.com",
        "Pick a time for your demo",
        "Still interested in a demo?",
    ]
    assert len(crm.calls) == 1  # the loop goes back to the wait, not to the webhook

    trace = got["trace"]
    events = [(t["step"], t["event"]) for t in trace]
    assert events[:6] == [
        (None, "entered"),
        ("tag", "updated"),
        ("alert", "sent"),
        ("crm", "sent"),
        ("invite", "sent"),
        ("clicked", "waiting"),
    ]
    # Every turn of the loop says why the participant went on without a click.
    timeouts = [t for t in trace if t["event"] == "timeout"]
    assert len(timeouts) >= reminders
    assert all(t["step"] == "clicked" and "reminder" in t["detail"] for t in timeouts)
    morning = [t for t in trace if t["step"] == "morning" and t["event"] == "waiting"]
    assert len(morning) == reminders
    assert "2027-01-04T09:30:00+00:00" in morning[0]["detail"]
    # The goal is checked before the next step, whichever it is, and ends the participant's run there.
    assert trace[-1]["event"] == "completed"
    assert trace[-1]["detail"] == "goal:became_customer"
