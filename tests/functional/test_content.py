"""Flow content through the API: message templates and forms (create, read, change, delete), and
paging through templates, forms, flows and a flow's participants with a cursor."""

from __future__ import annotations

from typing import Any

from tests.functional.conftest import Stack

EMAIL = {
    "channel": "email",
    "name": "Welcome",
    "subject": "Welcome {{ contact.first_name | default('there') }}",
    "html": "<p>Hello {{ contact.first_name }}</p>",
}
SMS = {"channel": "sms", "name": "Reminder", "text": "See you tomorrow, {{ contact.first_name }}"}


def error_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.body)
    error = answer.json_body["error"]
    assert set(error) == {"code", "message", "details"}
    return dict(error)


def walk(stack: Stack, path: str, name: str, limit: int) -> list[dict[str, Any]]:
    """Every item of a list, page by page; no page is longer than `limit`."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        got = stack.http(
            "GET", f"{path}{'&' if '?' in path else '?'}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        )
        assert got.status_code == 200, got.body
        assert len(got.json_body[name]) <= limit
        items.extend(got.json_body[name])
        cursor = got.json_body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


# --- templates ---------------------------------------------------------------------------------------


def test_an_email_template_is_created_read_changed_and_deleted(stack: Stack) -> None:
    created = stack.http("POST", "/templates", EMAIL)
    assert created.status_code == 201, created.body
    template = created.json_body
    assert template["id"].startswith("tpl_")
    assert {k: template[k] for k in EMAIL} == EMAIL
    assert template["text"] is None
    assert stack.http("GET", f"/templates/{template['id']}").json_body == template

    change = {**EMAIL, "name": "Welcome (new)", "text": "Hello {{ contact.first_name }}"}
    changed = stack.http("PUT", f"/templates/{template['id']}", change)
    assert changed.status_code == 200, changed.body
    assert changed.json_body["name"] == "Welcome (new)"
    assert changed.json_body["text"] == change["text"]
    assert changed.json_body["created_at"] == template["created_at"]
    assert changed.json_body["updated_at"] >= template["updated_at"]
    assert stack.http("GET", f"/templates/{template['id']}").json_body == changed.json_body

    assert stack.http("DELETE", f"/templates/{template['id']}").status_code == 204
    assert error_of(stack.http("GET", f"/templates/{template['id']}"), 404)["code"] == "template_not_found"
    assert error_of(stack.http("DELETE", f"/templates/{template['id']}"), 404)["code"] == "template_not_found"
    assert error_of(stack.http("PUT", f"/templates/{template['id']}", EMAIL), 404)["code"] == "template_not_found"


def test_an_sms_template_has_a_text_only_and_keeps_its_channel(stack: Stack) -> None:
    created = stack.http("POST", "/templates", SMS)
    assert created.status_code == 201, created.body
    assert set(created.json_body) == {"id", "channel", "name", "text", "created_at", "updated_at"}
    template_id = created.json_body["id"]
    error = error_of(stack.http("PUT", f"/templates/{template_id}", EMAIL), 409)
    assert error["code"] == "channel_change"
    assert stack.http("GET", f"/templates/{template_id}").json_body == created.json_body
    # An SMS has no subject; an email needs its HTML.
    error = error_of(stack.http("POST", "/templates", {**SMS, "subject": "Hi"}), 422)
    assert error["details"] == [
        {"path": "/subject", "code": "unknown_field", "message": error["details"][0]["message"]}
    ]
    error = error_of(stack.http("POST", "/templates", {k: v for k, v in EMAIL.items() if k != "html"}), 422)
    assert [(d["path"], d["code"]) for d in error["details"]] == [("/html", "required")]
    error = error_of(stack.http("POST", "/templates", {**SMS, "channel": "fax"}), 422)
    assert [d["path"] for d in error["details"]] == ["/channel"]
    assert error_of(stack.http("POST", "/templates", {**SMS, "text": "x" * 1601}), 422)["details"][0]["path"] == "/text"


def test_a_template_that_does_not_parse_is_refused_with_the_part_and_line(stack: Stack) -> None:
    broken = {**EMAIL, "subject": "Hi {{ contact.first_name ", "html": "<p>{% if x %}</p>"}
    error = error_of(stack.http("POST", "/templates", broken), 422)
    assert error["code"] == "invalid_template"
    assert [(d["path"], d["code"]) for d in error["details"]] == [
        ("/subject", "template_syntax"),
        ("/html", "template_syntax"),
    ]
    assert "line 1" in error["details"][0]["message"]
    created = stack.http("POST", "/templates", SMS).json_body
    error = error_of(stack.http("PUT", f"/templates/{created['id']}", {**SMS, "text": "{{ 1 + }}"}), 422)
    assert error["details"][0]["path"] == "/text"
    assert stack.http("GET", f"/templates/{created['id']}").json_body["text"] == SMS["text"]
    assert len(stack.http("GET", "/templates").json_body["templates"]) == 1


def test_templates_page_with_a_cursor(stack: Stack) -> None:
    made = {stack.http("POST", "/templates", {**SMS, "name": f"T{i}"}).json_body["id"] for i in range(5)}
    listed = walk(stack, "/templates", "templates", 2)
    assert sorted(t["id"] for t in listed) == sorted(made)


# --- forms -------------------------------------------------------------------------------------------


def test_a_form_is_created_read_changed_and_deleted(stack: Stack) -> None:
    created = stack.http("POST", "/forms", {"key": "demo", "name": "Demo", "owner_email": "Sales@Example.com"})
    assert created.status_code == 201, created.body
    form = created.json_body
    assert form == {
        "key": "demo",
        "name": "Demo",
        "owner_email": "sales@example.com",
        "submit_url": "/forms/demo/submissions",
    }
    assert stack.http("GET", "/forms/demo").json_body == form
    assert error_of(stack.http("POST", "/forms", {"key": "demo"}), 409)["code"] == "form_exists"

    changed = stack.http("PUT", "/forms/demo", {"name": "Book a demo", "owner_email": "lead@example.com"})
    assert changed.status_code == 200, changed.body
    assert changed.json_body == {**form, "name": "Book a demo", "owner_email": "lead@example.com"}
    cleared = stack.http("PUT", "/forms/demo", {"name": "Book a demo"})
    assert cleared.json_body["owner_email"] is None
    assert stack.http("GET", "/forms/demo").json_body == cleared.json_body
    assert error_of(stack.http("PUT", "/forms/nope", {"name": "x"}), 404)["code"] == "form_not_found"
    assert error_of(stack.http("PUT", "/forms/demo", {"name": ""}), 422)["details"][0]["path"] == "/name"

    assert stack.http("DELETE", "/forms/demo").status_code == 204
    assert error_of(stack.http("GET", "/forms/demo"), 404)["code"] == "form_not_found"
    assert error_of(stack.http("POST", "/forms/demo/submissions", {"email": "ada@example.com"}), 404)
    assert error_of(stack.http("DELETE", "/forms/demo"), 404)["code"] == "form_not_found"


def test_a_form_that_triggers_an_active_flow_cannot_be_deleted(stack: Stack) -> None:
    assert stack.http("POST", "/forms", {"key": "newsletter"}).status_code == 201
    flow = stack.http(
        "POST",
        "/flows",
        {
            "name": "Welcome",
            "trigger": {"type": "form_submitted", "form": "newsletter"},
            "start_at": "done",
            "steps": [{"id": "done", "type": "end"}],
        },
    ).json_body
    assert stack.http("POST", f"/flows/{flow['id']}/activate").status_code == 200
    error = error_of(stack.http("DELETE", "/forms/newsletter"), 409)
    assert error["code"] == "form_in_use"
    assert error["details"] == [{"flow_id": flow["id"]}]
    assert stack.http("GET", "/forms/newsletter").status_code == 200
    assert stack.http("POST", f"/flows/{flow['id']}/pause").status_code == 200
    assert stack.http("DELETE", "/forms/newsletter").status_code == 204
    # The paused flow cannot come back without its form.
    assert error_of(stack.http("POST", f"/flows/{flow['id']}/resume"), 409)["code"] == "form_not_found"


def test_forms_page_with_a_cursor(stack: Stack) -> None:
    for key in ("a", "b", "c"):
        assert stack.http("POST", "/forms", {"key": key}).status_code == 201
    listed = walk(stack, "/forms", "forms", 2)
    assert sorted(f["key"] for f in listed) == ["a", "b", "c"]
    assert {f["name"] for f in listed} == {"a", "b", "c"}


# --- flows and participants --------------------------------------------------------------------------


def test_flows_and_their_participants_page_with_a_cursor(stack: Stack) -> None:
    doc = {
        "name": "Manual",
        "trigger": {"type": "manual"},
        "start_at": "done",
        "steps": [{"id": "done", "type": "end"}],
    }
    flow_ids = [stack.http("POST", "/flows", {**doc, "name": f"F{i}"}).json_body["id"] for i in range(3)]
    assert sorted(f["id"] for f in walk(stack, "/flows", "flows", 2)) == sorted(flow_ids)

    flow_id = flow_ids[0]
    assert stack.http("POST", f"/flows/{flow_id}/activate").status_code == 200
    emails = [f"p{i}@example.com" for i in range(5)]
    for email in emails:
        assert stack.http("POST", "/contacts", {"email": email}).status_code == 201
    enrolled = stack.http("POST", f"/flows/{flow_id}/enrollments", {"emails": emails})
    assert [r["outcome"] for r in enrolled.json_body["results"]] == ["enrolled"] * 5
    listed = walk(stack, f"/flows/{flow_id}/participants", "participants", 2)
    assert sorted(p["participant_id"] for p in listed) == sorted(
        r["participant_id"] for r in enrolled.json_body["results"]
    )
    stack.run_until(
        lambda: all(
            p["status"] == "completed" for p in walk(stack, f"/flows/{flow_id}/participants", "participants", 50)
        )
    )
    assert len(walk(stack, f"/flows/{flow_id}/participants?status=completed", "participants", 2)) == 5
    assert walk(stack, f"/flows/{flow_id}/participants?status=failed", "participants", 2) == []
    assert error_of(stack.http("GET", f"/flows/{flow_id}/participants?status=lost"), 400)["code"] == "invalid_status"
    assert error_of(stack.http("GET", "/flows/fl_nope/participants"), 404)["code"] == "flow_not_found"
