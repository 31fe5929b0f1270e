"""CRM objects through the API as a marketer or a CRM sync uses them: activities (follow-ups), sales
and requests linked to a contact, created, listed, read and changed. Bad input is a 422 that lists
every problem and stores nothing; an unknown contact or object is a 404; roles are enforced.
"""

from __future__ import annotations

from typing import Any

from chalicelib.api.record_schemas import (
    Activity,
    ActivityPage,
    Sale,
    SalePage,
    ServiceRequest,
    ServiceRequestPage,
)
from chalicelib.storage.models import CrmObjectModel
from chalicelib.storage.paging import encode_cursor
from tests.functional.conftest import Stack
from tests.functional.test_lifecycle import error_of


def new_contact(stack: Stack, email: str = "ann@example.com", **extra: Any) -> str:
    got = stack.http("POST", "/contacts", {"email": email, **extra})
    assert got.status_code == 201, got.body
    return str(got.json_body["contact_id"])


def made(answer: Any, model: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status_code == status, answer.body
    model.model_validate(answer.json_body)
    return dict(answer.json_body)


def stored() -> int:
    return sum(1 for _ in CrmObjectModel.scan())


def test_activities_are_created_listed_read_and_changed(stack: Stack) -> None:
    cid = new_contact(stack)
    follow_up = made(
        stack.http(
            "POST",
            f"/contacts/{cid}/activities",
            {"type": "call", "subject": "Call back about the offer", "due_date": "2026-03-02",
             "owner_email": "Sales@Shop.Example", "notes": "prefers mornings"},
        ),
        Activity,
    )  # fmt: skip
    assert follow_up["object_id"].startswith("act_")
    assert follow_up["contact_id"] == cid
    assert (follow_up["type"], follow_up["due_date"], follow_up["done"]) == ("call", "2026-03-02", False)
    assert follow_up["owner_email"] == "sales@shop.example"
    task = made(stack.http("POST", f"/contacts/{cid}/activities", {"subject": "Send the brochure"}), Activity)
    assert (task["type"], task["due_date"], task["notes"]) == ("follow_up", None, None)

    listed = made(stack.http("GET", f"/contacts/{cid}/activities"), ActivityPage, 200)
    assert [a["object_id"] for a in listed["activities"]] == [task["object_id"], follow_up["object_id"]]
    assert listed["next_cursor"] is None

    done = made(
        stack.http("PATCH", f"/contacts/{cid}/activities/{follow_up['object_id']}", {"done": True, "notes": None}),
        Activity,
        200,
    )
    assert (done["done"], done["notes"], done["subject"]) == (True, None, "Call back about the offer")
    assert done["updated_at"] > follow_up["updated_at"]
    again = made(stack.http("GET", f"/contacts/{cid}/activities/{follow_up['object_id']}"), Activity, 200)
    assert again == done


def test_sales_keep_exact_amounts_and_move_through_statuses(stack: Stack) -> None:
    cid = new_contact(stack)
    deal = made(
        stack.http(
            "POST",
            f"/contacts/{cid}/sales",
            {"amount": "1250.00", "currency": "eur", "product": "Pro plan", "expected_close_date": "2026-04-01"},
        ),
        Sale,
    )
    assert (deal["amount"], deal["currency"], deal["status"]) == ("1250.00", "EUR", "open")
    small = made(stack.http("POST", f"/contacts/{cid}/sales", {"amount": 19.99, "currency": "USD"}), Sale)
    assert small["amount"] == "19.99"
    yen = made(stack.http("POST", f"/contacts/{cid}/sales", {"amount": "1e3", "currency": "JPY"}), Sale)
    assert yen["amount"] == "1000"
    dinar = made(stack.http("POST", f"/contacts/{cid}/sales", {"amount": "2.125", "currency": "KWD"}), Sale)
    assert dinar["amount"] == "2.125"

    won = made(
        stack.http(
            "PATCH", f"/contacts/{cid}/sales/{deal['object_id']}", {"status": "won", "close_date": "2026-03-20"}
        ),
        Sale,
        200,
    )
    assert (won["status"], won["close_date"], won["amount"]) == ("won", "2026-03-20", "1250.00")
    sales = made(stack.http("GET", f"/contacts/{cid}/sales"), SalePage, 200)["sales"]
    assert [s["object_id"] for s in sales] == [o["object_id"] for o in (dinar, yen, small, deal)]


def test_requests_are_opened_and_closed(stack: Stack) -> None:
    cid = new_contact(stack)
    opened = made(
        stack.http(
            "POST",
            f"/contacts/{cid}/requests",
            {"subject": "Parcel arrived damaged", "category": "delivery", "priority": "high"},
        ),
        ServiceRequest,
    )
    assert (opened["status"], opened["priority"], opened["description"]) == ("open", "high", None)
    closed = made(
        stack.http("PATCH", f"/contacts/{cid}/requests/{opened['object_id']}", {"status": "closed"}),
        ServiceRequest,
        200,
    )
    assert closed["status"] == "closed"
    assert made(stack.http("GET", f"/contacts/{cid}/requests"), ServiceRequestPage, 200)["requests"] == [closed]
    # Kinds stay apart: the request is no activity and no sale.
    assert stack.http("GET", f"/contacts/{cid}/activities").json_body["activities"] == []
    assert error_of(stack.http("GET", f"/contacts/{cid}/sales/{opened['object_id']}"), 404)["code"] == (
        "sale_not_found"
    )


def test_bad_input_lists_every_problem_and_stores_nothing(stack: Stack) -> None:
    cid = new_contact(stack)
    error = error_of(
        stack.http("POST", f"/contacts/{cid}/sales", {"amount": -5, "currency": "XYZ", "status": "maybe", "x": 1}),
        422,
    )
    assert error["code"] == "invalid_sale"
    assert {(d["path"], d["code"]) for d in error["details"]} == {
        ("/amount", "invalid"),
        ("/currency", "invalid"),
        ("/status", "invalid"),
        ("/x", "unknown_field"),
    }
    too_precise = error_of(stack.http("POST", f"/contacts/{cid}/sales", {"amount": "9.999", "currency": "EUR"}), 422)
    assert [(d["path"], d["message"]) for d in too_precise["details"]] == [
        ("/amount", "EUR amounts have at most 2 decimal(s)")
    ]
    missing = error_of(stack.http("POST", f"/contacts/{cid}/activities", {"type": "lunch", "owner_email": "x@"}), 422)
    assert {d["path"] for d in missing["details"]} == {"/subject", "/type", "/owner_email"}
    assert error_of(stack.http("POST", f"/contacts/{cid}/requests", raw='{"subject": '), 400)["code"] == (
        "malformed_json"
    )
    assert error_of(stack.http("POST", f"/contacts/{cid}/requests", ["subject"]), 422)["code"] == "not_an_object"
    assert stored() == 0

    activity = made(stack.http("POST", f"/contacts/{cid}/activities", {"subject": "Call"}), Activity)
    path = f"/contacts/{cid}/activities/{activity['object_id']}"
    cleared = error_of(stack.http("PATCH", path, {"subject": None, "done": "perhaps"}), 422)
    assert {d["path"] for d in cleared["details"]} == {"/subject", "/done"}
    assert error_of(stack.http("PATCH", path, {"due": "tomorrow"}), 422)["details"][0]["code"] == "unknown_field"
    assert made(stack.http("GET", path), Activity, 200) == activity


def test_unknown_contacts_and_objects_are_404(stack: Stack) -> None:
    assert error_of(stack.http("POST", "/contacts/ct_nobody/activities", {"subject": "Call"}), 404)["code"] == (
        "contact_not_found"
    )
    assert error_of(stack.http("GET", "/contacts/ct_nobody/sales"), 404)["code"] == "contact_not_found"
    cid = new_contact(stack)
    assert error_of(stack.http("GET", f"/contacts/{cid}/requests/req_00000000000000_00000000"), 404)["code"] == (
        "request_not_found"
    )
    assert error_of(stack.http("PATCH", f"/contacts/{cid}/activities/nothing", {"done": True}), 404)["code"] == (
        "activity_not_found"
    )
    assert stored() == 0


def test_lists_page_with_a_cursor_of_their_own(stack: Stack) -> None:
    cid = new_contact(stack)
    other = new_contact(stack, "bob@example.com")
    made_ids = [
        made(stack.http("POST", f"/contacts/{cid}/activities", {"subject": f"Task {n}"}), Activity)["object_id"]
        for n in range(5)
    ]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        path = f"/contacts/{cid}/activities?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = made(stack.http("GET", path), ActivityPage, 200)
        assert len(page["activities"]) <= 2
        seen += [a["object_id"] for a in page["activities"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made_ids))

    first = stack.http("GET", f"/contacts/{cid}/activities?limit=2").json_body["next_cursor"]
    assert error_of(stack.http("GET", f"/contacts/{other}/activities?cursor={first}"), 400)["code"] == (
        "invalid_cursor"
    )
    assert error_of(stack.http("GET", f"/contacts/{cid}/sales?cursor={first}"), 400)["code"] == "invalid_cursor"
    forged = encode_cursor({"contact_id": {"S": cid}, "at_id": {"S": "x"}})
    assert error_of(stack.http("GET", f"/contacts/{cid}/activities?cursor={forged}"), 400)["code"] == ("invalid_cursor")
    assert error_of(stack.http("GET", f"/contacts/{cid}/activities?limit=0"), 400)["code"] == "invalid_limit"
    assert error_of(stack.http("GET", f"/contacts/{cid}/activities?status=open"), 400)["code"] == ("unknown_parameter")


def test_roles_decide_who_may_read_and_write(stack: Stack) -> None:
    cid = new_contact(stack)
    editor = stack.key("content_editor")
    flow_admin = stack.key("flow_admin")
    body = {"amount": "10", "currency": "EUR"}
    assert error_of(stack.http("POST", f"/contacts/{cid}/sales", body, key=editor), 403)["code"] == "forbidden"
    assert error_of(stack.http("POST", f"/contacts/{cid}/sales", body, key=None), 401)
    assert stored() == 0
    sale = made(stack.http("POST", f"/contacts/{cid}/sales", body, key=flow_admin), Sale)
    assert made(stack.http("GET", f"/contacts/{cid}/sales", key=editor), SalePage, 200)["sales"] == [sale]
    patched = stack.http("PATCH", f"/contacts/{cid}/sales/{sale['object_id']}", {"status": "lost"}, key=editor)
    assert error_of(patched, 403)["code"] == "forbidden"
    assert made(stack.http("GET", f"/contacts/{cid}/sales/{sale['object_id']}", key=editor), Sale, 200) == sale
