"""The flow lifecycle and the edges around it, through HTTP as a marketer and a website see them.

Bad input gets a clear 4xx JSON answer and changes nothing; a live edit never disturbs people already
in a flow; manual enrollment answers one outcome per contact; ending a flow stops everyone in it;
an unsubscribe is honoured by the next send. What happened is read back from moto.
"""

from __future__ import annotations

import time
from typing import Any

from chalice.test import Client

from chalicelib.local.gateway import shape_test_client
from chalicelib.storage.models import ContactModel
from tests.conftest import example
from tests.functional.conftest import Stack, body_of, links

# --- helpers ---------------------------------------------------------------------------------------------


def new_form(stack: Stack, key: str) -> None:
    answer = stack.http("POST", "/forms", {"key": key, "name": key})
    assert answer.status_code == 201, answer.body


def new_flow(stack: Stack, doc: dict[str, Any], *, activate: bool = True) -> str:
    created = stack.http("POST", "/flows", doc)
    assert created.status_code == 201, created.body
    flow_id = str(created.json_body["id"])
    if activate:
        activated = stack.http("POST", f"/flows/{flow_id}/activate")
        assert activated.status_code == 200, activated.body
    return flow_id


def submit(stack: Stack, form: str, **fields: Any) -> Any:
    answer = stack.http("POST", f"/forms/{form}/submissions", fields)
    assert answer.status_code == 202, answer.body
    return answer.json_body


def two_emails(form: str) -> dict[str, Any]:
    """First email, a wait of a day (one second here), a second email, end."""
    return {
        "name": "Two emails",
        "trigger": {"type": "form_submitted", "form": form},
        "reentry": {"mode": "never"},
        "start_at": "first",
        "steps": [
            {"id": "first", "type": "send_email", "subject": "Hello {{ contact.first_name or 'there' }}",
             "html": "<p>Hello. <a href=\"https://example.com/hello\">Look</a></p>", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": {"days": 1}, "next": "second"},
            {"id": "second", "type": "send_email", "subject": "Second", "html": "<p>Again.</p>", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip


def status_of(stack: Stack, flow_id: str, pid: str) -> tuple[str, str | None]:
    got = stack.participant(flow_id, pid)
    return got["status"], got["current_step"]


def finished(stack: Stack, flow_id: str, pid: str) -> bool:
    return status_of(stack, flow_id, pid)[0] in ("completed", "exited", "failed")


def closed_executions(stack: Stack) -> list[dict[str, Any]]:
    """The executions once none is running: moto closes one a moment after its last task is answered."""
    stack.run_until(lambda: not stack.executions("RUNNING"), timeout=5)
    return stack.executions()


def settle(stack: Stack, seconds: float) -> None:
    """Keep the workers running for a while, for checks that nothing more happens."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not stack.pump():
            time.sleep(0.05)


def error_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.body)
    assert answer.headers["Content-Type"].startswith("application/json")
    error = answer.json_body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["message"]
    return dict(error)


def contacts_stored() -> int:
    return sum(1 for _ in ContactModel.scan())


# --- (a) bad input gets a clear 4xx and changes nothing --------------------------------------------------


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(stack: Stack) -> None:
    malformed = stack.http("POST", "/flows", raw='{"name": "Broken",')
    assert error_of(malformed, 400)["code"] == "malformed_json"

    doc = example("welcome")
    doc["start_at"] = "nowhere"
    doc["steps"][0]["next"] = "missing"
    doc["steps"][1]["duration"] = {"days": 0}
    doc["steps"][3]["id"] = "welcome"
    del doc["steps"][5]["text"]
    error = error_of(stack.http("POST", "/flows", doc), 422)
    assert error["code"] == "invalid_flow"
    found = {(d["path"], d["code"]) for d in error["details"]}
    assert {
        ("/start_at", "dangling_reference"),
        ("/steps/0/next", "dangling_reference"),
        ("/steps/1/duration", "value_error"),
        ("/steps/3/id", "duplicate_id"),
        ("/steps/5/text", "missing"),
    } <= found
    assert all(d["message"] for d in error["details"])
    assert stack.http("GET", "/flows").json_body == {"flows": [], "next_cursor": None}

    # A trigger on a form that does not exist cannot be activated.
    flow_id = new_flow(stack, example("welcome"), activate=False)
    error = error_of(stack.http("POST", f"/flows/{flow_id}/activate"), 409)
    assert error["code"] == "form_not_found"
    assert "newsletter" in error["message"]
    flow = stack.http("GET", f"/flows/{flow_id}").json_body
    assert (flow["status"], flow["version"]) == ("draft", None)
    assert stack.http("GET", f"/flows/{flow_id}/versions").json_body == {"versions": []}
    assert stack.sfn.list_state_machines()["stateMachines"] == []

    unknown_form = stack.http("POST", "/forms/newsletter/submissions", {"email": "anna@example.com"})
    assert error_of(unknown_form, 404)["code"] == "form_not_found"
    new_form(stack, "newsletter")
    assert stack.http("POST", f"/flows/{flow_id}/activate").status_code == 200
    bad = stack.http("POST", "/forms/newsletter/submissions", {"email": "anna@", "first_name": "Anna"})
    error = error_of(bad, 422)
    assert error["code"] == "invalid_email"
    assert "anna@" in error["message"]
    missing = stack.http("POST", "/forms/newsletter/submissions", {"first_name": "Anna"})
    assert error_of(missing, 422)["code"] == "email_required"
    assert stack.pump() == 0, "nothing was handed to the enrollment queue"
    assert contacts_stored() == 0

    assert error_of(stack.http("GET", "/flows/fl_nothere"), 404)["code"] == "flow_not_found"
    assert error_of(stack.http("GET", "/contacts/ct_nothere"), 404)["code"] == "contact_not_found"
    assert error_of(stack.http("POST", f"/flows/{flow_id}/explode"), 404)["code"] == "not_found"
    missing_participant = stack.http("GET", f"/flows/{flow_id}/participants/ct_nothere.1")
    assert error_of(missing_participant, 404)["code"] == "participant_not_found"
    assert error_of(stack.http("POST", f"/flows/{flow_id}/enrollments", {"emails": []}), 422)["code"] == "no_contacts"
    assert stack.executions() == []
    assert stack.emails() == []


def test_an_unknown_path_is_a_404_in_the_error_shape() -> None:
    # The gateway answers before any route runs (a gateway response in infra/), so no AWS stack is needed.
    from app import app

    with shape_test_client(Client(app)) as client:
        assert error_of(client.http.get("/no/such/route"), 404)["code"] == "not_found"


def test_what_websites_post_paused_urlencoded_honeypot(stack: Stack) -> None:
    new_form(stack, "newsletter")
    flow_id = new_flow(stack, example("welcome"))
    paused = stack.http("POST", f"/flows/{flow_id}/pause")
    assert paused.status_code == 200, paused.body
    assert paused.json_body["status"] == "paused"

    # While the flow is paused, a submission stores the contact and enrolls nobody.
    anna = submit(stack, "newsletter", email="anna@example.com", first_name="Anna")
    assert anna["created"] is True
    assert anna["flows"] == []
    contact = stack.http("GET", f"/contacts/{anna['contact_id']}")
    assert contact.status_code == 200
    assert contact.json_body["first_name"] == "Anna"
    assert contact.json_body["forms_submitted"] == ["newsletter"]

    # A bot that fills the hidden field gets a success that keeps nothing.
    bot = submit(stack, "newsletter", email="bot@example.com", first_name="Bot", _hp="http://spam.test")
    assert bot == {"contact_id": None, "created": False, "flows": [], "already_enrolled": []}
    settle(stack, 0.3)
    assert contacts_stored() == 1
    assert stack.http("GET", f"/flows/{flow_id}/participants").json_body == {"participants": [], "next_cursor": None}
    assert stack.executions() == []
    assert stack.emails() == []

    # Wrong method and content type answer in the error shape.
    assert error_of(stack.http("DELETE", "/flows"), 405)["code"]
    plain = stack.http("POST", "/forms/newsletter/submissions", raw="email=a@example.com", content_type="text/plain")
    assert error_of(plain, 415)["code"]

    # Resumed, the flow takes a plain HTML form post (urlencoded) like a JSON one.
    assert stack.http("POST", f"/flows/{flow_id}/resume").json_body["status"] == "active"
    eve = stack.http(
        "POST",
        "/forms/newsletter/submissions",
        raw="email=Eve%40Example.com&first_name=Eve&submit=Send",
        content_type="application/x-www-form-urlencoded",
    )
    assert eve.status_code == 202, eve.body
    assert eve.json_body["flows"] == [flow_id]
    contact = stack.http("GET", f"/contacts/{eve.json_body['contact_id']}").json_body
    assert (contact["email"], contact["first_name"]) == ("eve@example.com", "Eve")
    assert "submit" not in contact["fields"]
    stack.run_until(lambda: len(stack.emails()) == 1)
    assert [(m["To"], m["Subject"]) for m in stack.emails()] == [("eve@example.com", "Welcome, Eve!")]
    listed = stack.http("GET", f"/flows/{flow_id}/participants").json_body["participants"]
    assert [p["contact_id"] for p in listed] == [eve.json_body["contact_id"]]
    assert contacts_stored() == 2


# --- (b) a live edit never disturbs people in the flow ---------------------------------------------------


def test_a_live_edit_leaves_people_in_the_flow_on_their_version(stack: Stack) -> None:
    new_form(stack, "newsletter")
    v1 = example("welcome")
    flow_id = new_flow(stack, v1)
    anna = submit(stack, "newsletter", email="anna@example.com", first_name="Anna", phone="+31612345678")
    anna_pid = f"{anna['contact_id']}.1"
    # Anna has had the welcome and waits before the branch when the marketer edits the flow.
    stack.run_until(lambda: status_of(stack, flow_id, anna_pid) == ("waiting", "pause"))

    v2 = example("welcome")
    v2["steps"][0]["subject"] = "Welcome aboard, {{ contact.first_name or 'friend' }}!"
    v2["steps"][5]["text"] = "{{ contact.first_name }}, your welcome email is waiting for you."
    edited = stack.http("PUT", f"/flows/{flow_id}", v2)
    assert edited.status_code == 200, edited.body
    assert edited.json_body["version"] == 1, "an edit is a draft until activated"
    activated = stack.http("POST", f"/flows/{flow_id}/activate")
    assert activated.status_code == 200, activated.body
    assert activated.json_body["version"] == 2
    # Activating an unchanged draft publishes nothing new.
    assert stack.http("POST", f"/flows/{flow_id}/activate").json_body["version"] == 2
    versions = stack.http("GET", f"/flows/{flow_id}/versions").json_body["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["document"] == v1
    assert versions[1]["document"] == v2
    assert versions[0]["state_machine_arn"] != versions[1]["state_machine_arn"]

    bram = submit(stack, "newsletter", email="bram@example.com", first_name="Bram", phone="+31612345679")
    bram_pid = f"{bram['contact_id']}.1"
    stack.run_until(lambda: finished(stack, flow_id, anna_pid) and finished(stack, flow_id, bram_pid))

    anna_now, bram_now = stack.participant(flow_id, anna_pid), stack.participant(flow_id, bram_pid)
    assert (anna_now["version"], anna_now["status"]) == (1, "completed")
    assert (bram_now["version"], bram_now["status"]) == (2, "completed")
    assert anna_now["trace"][0]["detail"].endswith("version 1")
    assert bram_now["trace"][0]["detail"].endswith("version 2")
    assert sorted((str(m["To"]), str(m["Subject"])) for m in stack.emails()) == [
        ("anna@example.com", "Welcome, Anna!"),
        ("bram@example.com", "Welcome aboard, Bram!"),
    ]
    assert sorted(stack.sms()) == [
        ("+31612345678", "Hi Anna, did you see our welcome email? Reply STOP to opt out."),
        ("+31612345679", "Bram, your welcome email is waiting for you."),
    ]
    machines = {e["stateMachineArn"]: e["status"] for e in closed_executions(stack)}
    assert machines == {versions[0]["state_machine_arn"]: "SUCCEEDED", versions[1]["state_machine_arn"]: "SUCCEEDED"}


# --- (c) manual enrollment -------------------------------------------------------------------------------


def test_manual_enrollment_answers_one_outcome_per_contact(stack: Stack) -> None:
    new_form(stack, "contact-us")
    anna = submit(stack, "contact-us", email="anna@example.com", first_name="Anna")["contact_id"]
    nameless = submit(stack, "contact-us", email="nameless@example.com")["contact_id"]
    doc = {
        "name": "Hello by hand",
        "trigger": {"type": "manual"},
        "filter": {"type": "field", "field": "first_name", "op": "exists"},
        "reentry": {"mode": "never"},
        "start_at": "hello",
        "steps": [
            {"id": "hello", "type": "send_email", "subject": "Hello {{ contact.first_name }}", "html": "<p>Hi.</p>",
             "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip
    flow_id = new_flow(stack, doc, activate=False)

    def enroll(**body: Any) -> list[dict[str, Any]]:
        answer = stack.http("POST", f"/flows/{flow_id}/enrollments", body)
        assert answer.status_code == 200, answer.body
        return list(answer.json_body["results"])

    def outcomes(results: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
        return [(r.get("email") or r["contact_id"], r["outcome"], r["participant_id"]) for r in results]

    assert outcomes(enroll(contact_ids=[anna])) == [(anna, "flow_not_active", None)]
    assert stack.http("POST", f"/flows/{flow_id}/activate").status_code == 200

    first = enroll(emails=["anna@example.com", "ghost@example.com"], contact_ids=[nameless, "ct_nobody"])
    assert outcomes(first) == [
        ("anna@example.com", "enrolled", f"{anna}.1"),
        ("ghost@example.com", "contact_not_found", None),
        (nameless, "filtered_out", None),
        ("ct_nobody", "contact_not_found", None),
    ]
    assert "first_name" in first[2]["detail"]

    # While Anna is in the flow, by address (in any case) or by id, she is not enrolled again.
    again = enroll(emails=["ANNA@example.com"], contact_ids=[anna])
    assert outcomes(again) == [
        ("ANNA@example.com", "already_enrolled", f"{anna}.1"),
        (anna, "already_enrolled", f"{anna}.1"),
    ]

    stack.run_until(lambda: finished(stack, flow_id, f"{anna}.1"))
    after = enroll(contact_ids=[anna])
    assert outcomes(after) == [(anna, "reentry_blocked", f"{anna}.1")]
    assert after[0]["detail"]

    listed = stack.http("GET", f"/flows/{flow_id}/participants").json_body["participants"]
    assert [(p["participant_id"], p["status"]) for p in listed] == [(f"{anna}.1", "completed")]
    assert [(m["To"], m["Subject"]) for m in stack.emails()] == [("anna@example.com", "Hello Anna")]
    assert len(stack.executions()) == 1
    assert stack.participant(flow_id, f"{anna}.1")["trace"][0]["detail"] == "manual, version 1"


# --- (d) ending a flow -----------------------------------------------------------------------------------


def test_ending_a_flow_stops_everyone_in_it(stack: Stack) -> None:
    new_form(stack, "signup")
    flow_id = new_flow(stack, two_emails("signup"))
    anna = submit(stack, "signup", email="anna@example.com")
    pid = f"{anna['contact_id']}.1"
    # Anna had the first email and waits a day (a second here) for the second.
    stack.run_until(lambda: status_of(stack, flow_id, pid) == ("waiting", "pause"))

    ended = stack.http("POST", f"/flows/{flow_id}/end")
    assert ended.status_code == 200, ended.body
    assert ended.json_body["status"] == "ended"
    assert ended.json_body["participants_stopped"] == 1

    got = stack.participant(flow_id, pid)
    assert (got["status"], got["reason"]) == ("exited", "flow_ended")
    assert got["trace"][-1]["event"] == "exited"
    assert got["trace"][-1]["step"] == "pause"
    stack.run_until(lambda: [e["status"] for e in stack.executions()] == ["ABORTED"], timeout=5)

    # A late click still takes the recipient where the link goes, and moves nobody.
    late = stack.http("GET", links(body_of(stack.emails()[0]), "c")[0])
    assert late.status_code == 302
    assert late.headers["Location"] == "https://example.com/hello"
    # Nobody new comes in either.
    assert submit(stack, "signup", email="bram@example.com")["flows"] == []
    settle(stack, 1.5)  # longer than the (compressed) wait

    assert [m["Subject"] for m in stack.emails()] == ["Hello there"]
    listed = stack.http("GET", f"/flows/{flow_id}/participants").json_body["participants"]
    assert [(p["participant_id"], p["status"]) for p in listed] == [(pid, "exited")]
    after = stack.participant(flow_id, pid)
    assert (after["status"], after["reason"], after["trace"]) == ("exited", "flow_ended", got["trace"])
    assert [e["status"] for e in stack.executions()] == ["ABORTED"]
    # An ended flow stays ended.
    assert stack.http("GET", f"/flows/{flow_id}").json_body["status"] == "ended"


# --- (e) unsubscribe -------------------------------------------------------------------------------------


def test_an_unsubscribe_is_honoured_by_the_next_email(stack: Stack) -> None:
    new_form(stack, "signup")
    flow_id = new_flow(stack, two_emails("signup"))
    anna = submit(stack, "signup", email="anna@example.com", first_name="Anna")
    contact_id, pid = anna["contact_id"], f"{anna['contact_id']}.1"
    stack.run_until(lambda: len(stack.emails()) == 1)

    first = stack.emails()[0]
    assert first["Subject"] == "Hello Anna"
    header = str(first["List-Unsubscribe"])
    assert header.startswith("<https://floe.shop.test/u/") and header.endswith(">")
    path = header[1:-1].removeprefix("https://floe.shop.test")

    # Opening the page (or a link scanner following it) unsubscribes nobody.
    page = stack.http("GET", path)
    assert page.status_code == 200
    assert stack.http("GET", f"/contacts/{contact_id}").json_body["unsubscribed"] == []

    # RFC 8058 one-click, as a mail client sends it.
    one_click = stack.http(
        "POST", path, raw="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert one_click.status_code == 200, one_click.body
    assert one_click.json_body == {"contact_id": contact_id, "channel": "email", "unsubscribed": True}
    assert stack.http("GET", f"/contacts/{contact_id}").json_body["unsubscribed"] == ["email"]

    stack.run_until(lambda: finished(stack, flow_id, pid))
    got = stack.participant(flow_id, pid)
    assert got["status"] == "completed"
    assert got["last_message"]["step"] == "first"
    skipped = [t for t in got["trace"] if t["event"] == "skipped"]
    assert [(t["step"], t["detail"]) for t in skipped] == [("second", "the contact unsubscribed from email")]
    assert [m["Subject"] for m in stack.emails()] == ["Hello Anna"]
    assert [e["status"] for e in closed_executions(stack)] == ["SUCCEEDED"]


def test_the_flow_schema_is_served() -> None:
    from app import app

    with Client(app) as client:
        schema = client.http.get("/schema/flow").json_body
    assert schema["title"] == "Flow"
    assert {"name", "trigger", "start_at", "steps"} <= set(schema["required"])
    step_types = {
        schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"]
        for ref in schema["properties"]["steps"]["items"]["oneOf"]
    }
    assert step_types == {
        "send_email",
        "send_sms",
        "wait",
        "wait_until",
        "branch",
        "wait_for",
        "update_contact",
        "notify",
        "webhook",
        "goto",
        "end",
    }
