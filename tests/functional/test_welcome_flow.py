"""The welcome flow end to end, through the real compiled state machine in moto.

Form submission → welcome email → wait → branch on "opened" → the guide for openers, an SMS nudge
for the others → end. What was sent is read back from moto's SES and SNS.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.config import settings
from tests.conftest import example
from tests.functional.conftest import Stack, body_of, links


def start_welcome(stack: Stack) -> str:
    assert stack.http("POST", "/forms", {"key": "newsletter", "name": "Newsletter sign-up"}).status_code == 201
    created = stack.http("POST", "/flows", example("welcome"))
    assert created.status_code == 201, created.body
    flow_id = created.json_body["id"]
    activated = stack.http("POST", f"/flows/{flow_id}/activate")
    assert activated.status_code == 200, activated.body
    assert activated.json_body["status"] == "active"
    assert activated.json_body["version"] == 1
    return str(flow_id)


def submit(stack: Stack, **fields: Any) -> Any:
    return stack.http("POST", "/forms/newsletter/submissions", fields)


def finished(stack: Stack, flow_id: str, pid: str) -> bool:
    return stack.participant(flow_id, pid)["status"] in ("completed", "exited", "failed")


def test_openers_get_the_guide(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two days last about 3.5 s here, so opening the email surely falls inside the wait.
    monkeypatch.setenv("FLOE_TIME_SCALE", "2e-5")
    settings.cache_clear()
    bootstrap.runtime.cache_clear()
    flow_id = start_welcome(stack)
    answer = submit(stack, email="Anna@Example.com", first_name="Anna", phone="+31612345678")
    assert answer.status_code == 202
    assert answer.json_body["flows"] == [flow_id]
    pid = f"{answer.json_body['contact_id']}.1"

    stack.run_until(lambda: len(stack.emails()) == 1)
    welcome = stack.emails()[0]
    assert welcome["To"] == "anna@example.com"
    assert welcome["Subject"] == "Welcome, Anna!"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = body_of(welcome)
    assert "Hi Anna," in html
    assert links(html, "c"), "the link to get started is tracked"

    # Anna opens the email during the wait: the pixel is fetched.
    pixel = stack.http("GET", links(html, "o")[0], headers={"Accept": "image/webp,image/*,*/*;q=0.8"})
    assert pixel.status_code == 200, pixel.body
    assert pixel.headers["Content-Type"] == "image/gif"

    stack.run_until(lambda: finished(stack, flow_id, pid))
    got = stack.participant(flow_id, pid)
    assert got["status"] == "completed"
    assert got["current_step"] == "done"
    assert got["last_message"]["step"] == "guide"
    assert got["last_message"]["status"] == "sent"
    assert [m["Subject"] for m in stack.emails()] == ["Welcome, Anna!", "Your getting-started guide"]
    assert stack.sms() == []
    branch = [t for t in got["trace"] if t["event"] == "branch"]
    assert branch[0]["step"] == "opened"
    assert branch[0]["detail"].startswith("yes → guide")
    execution = stack.executions()[0]
    assert execution["status"] == "SUCCEEDED"


def test_the_others_get_an_sms(stack: Stack) -> None:
    flow_id = start_welcome(stack)
    answer = submit(stack, email="bram@example.com", first_name="Bram", phone="+31 6 1234 5679")
    pid = f"{answer.json_body['contact_id']}.1"

    stack.run_until(lambda: finished(stack, flow_id, pid))
    got = stack.participant(flow_id, pid)
    assert got["status"] == "completed"
    assert got["last_message"]["channel"] == "sms"
    assert [m["Subject"] for m in stack.emails()] == ["Welcome, Bram!"]
    assert stack.sms() == [("+31612345679", "Hi Bram, did you see our welcome email? Reply STOP to opt out.")]
    reasons = [t["detail"] for t in got["trace"] if t["event"] == "branch"]
    assert reasons[0].startswith("no → has_phone: not opened welcome")
    assert reasons[1].startswith("yes → nudge")


def test_a_second_identical_submission_enrolls_nobody_again(stack: Stack) -> None:
    flow_id = start_welcome(stack)
    first = submit(stack, email="cleo@example.com")
    # Posted twice before the enrollment queue ran: the second trigger is absorbed there.
    twice = submit(stack, email="cleo@example.com")
    pid = f"{first.json_body['contact_id']}.1"
    stack.run_until(lambda: len(stack.emails()) == 1)
    # Posted again while Cleo is in the flow: the answer says so.
    second = submit(stack, email="CLEO@example.com")
    assert first.json_body["contact_id"] == twice.json_body["contact_id"] == second.json_body["contact_id"]
    assert second.json_body["created"] is False
    assert first.json_body["already_enrolled"] == []
    assert second.json_body["already_enrolled"] == [flow_id]
    stack.run_until(lambda: finished(stack, flow_id, pid))
    listed = stack.http("GET", f"/flows/{flow_id}/participants").json_body["participants"]
    assert [p["participant_id"] for p in listed] == [pid]
    assert len(stack.emails()) == 1
    assert len(stack.executions()) == 1
    # Without a phone number the SMS branch is skipped and said so.
    got = stack.participant(flow_id, pid)
    assert any(t["detail"].startswith("no → done") for t in got["trace"] if t["event"] == "branch")
