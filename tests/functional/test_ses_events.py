"""SES events from the stack's topic: permanent bounces and complaints stop email to the address."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import example
from tests.functional.conftest import Stack


def ses_event(kind: str, address: str, **detail: Any) -> str:
    body: dict[str, Any] = {"eventType": kind, "mail": {"destination": [address], "tags": {"flow": ["fl_x"]}}}
    if kind == "Bounce":
        body["bounce"] = {
            "bounceType": detail.get("bounce_type", "Permanent"),
            "bouncedRecipients": [{"emailAddress": address}],
        }
    if kind == "Complaint":
        body["complaint"] = {"complainedRecipients": [{"emailAddress": address}]}
    return json.dumps(body)


def deliver(stack: Stack, message: str) -> Any:
    event = stack.client.events.generate_sns_event(message=message, subject="Amazon SES Email Event Notification")
    return stack.client.lambda_.invoke("ses_event_worker", event).payload


def contact(stack: Stack, address: str) -> dict[str, Any]:
    stack.http("POST", "/forms", {"key": "newsletter", "name": "Newsletter"})
    answer = stack.http("POST", "/forms/newsletter/submissions", {"email": address})
    assert answer.status_code == 202, answer.body
    got = stack.http("GET", f"/contacts/{answer.json_body['contact_id']}")
    return dict(got.json_body)


def test_a_permanent_bounce_and_a_complaint_suppress_email(stack: Stack) -> None:
    bounced = contact(stack, "gone@example.com")
    complained = contact(stack, "angry@example.com")
    assert deliver(stack, ses_event("Bounce", "gone@example.com")) == [bounced["contact_id"]]
    assert deliver(stack, ses_event("Complaint", "Angry@example.com")) == [complained["contact_id"]]
    for who in (bounced, complained):
        after = stack.http("GET", f"/contacts/{who['contact_id']}").json_body
        assert after["unsubscribed"] == ["email"]


def test_transient_bounces_deliveries_and_strangers_change_nothing(stack: Stack) -> None:
    someone = contact(stack, "busy@example.com")
    assert deliver(stack, ses_event("Bounce", "busy@example.com", bounce_type="Transient")) == []
    assert deliver(stack, ses_event("Delivery", "busy@example.com")) == []
    assert deliver(stack, ses_event("Complaint", "nobody@example.com")) == []
    assert stack.http("GET", f"/contacts/{someone['contact_id']}").json_body["unsubscribed"] == []


def test_a_suppressed_contact_gets_no_flow_email(stack: Stack) -> None:
    gone = contact(stack, "gone@example.com")
    deliver(stack, ses_event("Bounce", "gone@example.com"))
    flow_id = stack.http("POST", "/flows", example("welcome")).json_body["id"]
    assert stack.http("POST", f"/flows/{flow_id}/activate").status_code == 200
    enrolled = stack.http("POST", f"/flows/{flow_id}/enrollments", {"contact_ids": [gone["contact_id"]]})
    pid = enrolled.json_body["results"][0]["participant_id"]
    stack.run_until(lambda: stack.participant(flow_id, pid)["status"] == "completed")
    trace = stack.participant(flow_id, pid)["trace"]
    assert {"step": "welcome", "event": "skipped"}.items() <= next(t for t in trace if t["step"] == "welcome").items()
    assert stack.emails() == []
