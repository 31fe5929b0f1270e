"""The contacts API as a marketer and a website use it: create, upsert, change, read and list contacts,
with typed custom fields and proof of consent. Bad input is a 4xx that lists every problem and changes
nothing; an address or external id belongs to one contact only. What is stored is read back from moto.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from chalicelib.api.contacts import Contact, ContactPage, FieldDefinition, FieldDefinitionList
from chalicelib.bootstrap import runtime
from chalicelib.contacts.input import check_contact
from chalicelib.storage.contacts import Contacts, DuplicateContact, email_key, external_key
from chalicelib.storage.models import ContactKeyModel, ContactModel
from chalicelib.storage.paging import encode_cursor
from tests.functional.conftest import Stack

FULL = {
    "email": "Ann.de.Vries@Example.COM",
    "external_id": "crm-1001",
    "phone": "06 12345678",
    "first_name": "Ann",
    "last_name": "de Vries",
    "company": "Shop BV",
    "language": "nl-NL",
    "timezone": "Europe/Amsterdam",
    "category": "Lead",
    "owner_email": "Sales@Shop.Example",
    "fields": {"plan": "pro", "seats": "12", "birthday": "1990-05-17", "vip": "yes", "note": "met at a fair"},
    "tags": ["vip", " fair-2026 "],
    "lists": ["newsletter"],
    "consent": {
        "email": {"status": "granted", "source": "form:newsletter", "at": "2026-02-01T10:00:00+01:00"},
        "sms": {"status": "denied", "source": "call centre"},
    },
}


# --- helpers ---------------------------------------------------------------------------------------------


def define_fields(stack: Stack) -> None:
    for spec in (
        {"name": "plan", "type": "choice", "options": ["Basic", "Pro"], "label": "Plan"},
        {"name": "seats", "type": "number"},
        {"name": "birthday", "type": "date"},
        {"name": "vip", "type": "boolean"},
        {"name": "note", "type": "text"},
    ):
        got = stack.http("POST", "/fields", spec)
        assert got.status_code == 201, got.body
        FieldDefinition.model_validate(got.json_body)


def contact(answer: Any, status: int = 200) -> dict[str, Any]:
    """The contact of a successful answer, checked against the response model of the API."""
    assert answer.status_code == status, answer.body
    Contact.model_validate(answer.json_body)
    return dict(answer.json_body)


def create(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    return contact(stack.http("POST", "/contacts", body), 201)


def error_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.body
    return dict(answer.json_body["error"])


def problems(answer: Any) -> dict[str, str]:
    """path → code of a 422's details."""
    return {d["path"]: d["code"] for d in error_of(answer, 422)["details"]}


def stored() -> list[dict[str, Any]]:
    """Every contact item in the table, as plain values."""
    return [item.serialize() for item in ContactModel.scan(consistent_read=True)]


def keys() -> dict[str, str]:
    return {k.key: k.contact_id for k in ContactKeyModel.scan(consistent_read=True)}


def snapshot() -> tuple[list[dict[str, Any]], dict[str, str]]:
    contacts = sorted(stored(), key=lambda c: str(c["contact_id"]["S"]))
    return contacts, keys()


# --- create ----------------------------------------------------------------------------------------------


def test_a_contact_is_created_checked_and_normalised(stack: Stack) -> None:
    define_fields(stack)
    made = create(stack, FULL)
    assert made["contact_id"].startswith("ct_")
    expected = {
        "email": "ann.de.vries@example.com",
        "external_id": "crm-1001",
        "phone": "+31612345678",
        "first_name": "Ann",
        "last_name": "de Vries",
        "company": "Shop BV",
        "language": "nl-nl",
        "timezone": "Europe/Amsterdam",
        "category": "lead",
        "owner_email": "sales@shop.example",
        "fields": {"plan": "Pro", "seats": 12, "birthday": "1990-05-17", "vip": True, "note": "met at a fair"},
        "tags": ["fair-2026", "vip"],
        "lists": ["newsletter"],
        "unsubscribed": ["sms"],
        "forms_submitted": [],
    }
    assert {k: made[k] for k in expected} == expected
    # The proof of consent: what, where and when; a denied channel is not sent to.
    assert made["consent"]["email"] == {
        "status": "granted",
        "source": "form:newsletter",
        "at": "2026-02-01T09:00:00+00:00",
    }
    assert made["consent"]["sms"]["status"] == "denied"
    assert made["consent"]["sms"]["source"] == "call centre"
    assert dt.datetime.fromisoformat(made["consent"]["sms"]["at"]).tzinfo is not None

    read = contact(stack.http("GET", f"/contacts/{made['contact_id']}"))
    assert read == made
    # What DynamoDB holds: typed custom fields, the unique keys.
    (item,) = ContactModel.scan(consistent_read=True)
    assert item.fields.as_dict() == {
        "plan": "Pro",
        "seats": 12,
        "birthday": "1990-05-17",
        "vip": True,
        "note": "met at a fair",
    }
    assert keys() == {
        email_key("ann.de.vries@example.com"): made["contact_id"],
        external_key("crm-1001"): made["contact_id"],
    }


def test_withdrawn_or_denied_consent_unsubscribes_that_channel_only(stack: Stack) -> None:
    made = create(
        stack,
        {
            "email": "bo@example.com",
            "phone": "+32470123456",
            "consent": {"email": {"status": "withdrawn", "source": "phone call"}},
        },
    )
    assert made["unsubscribed"] == ["email"]
    assert made["consent"]["sms"] is None
    # Given again later, with its new proof: mailable again; SMS consent denied: that channel off.
    changed = contact(
        stack.http(
            "PATCH",
            f"/contacts/{made['contact_id']}",
            {
                "consent": {
                    "email": {"status": "granted", "source": "form:newsletter"},
                    "sms": {"status": "denied", "source": "form:newsletter"},
                }
            },
        )
    )
    assert changed["unsubscribed"] == ["sms"]
    assert changed["consent"]["email"]["source"] == "form:newsletter"


BAD_BODIES: list[tuple[dict[str, Any], str, str]] = [
    ({"email": "jürgen@example.com"}, "/email", "invalid_email"),
    ({"email": "not-an-address"}, "/email", "invalid_email"),
    ({"email": "a@example.com", "phone": "12345"}, "/phone", "invalid_phone"),
    ({"email": "a@example.com", "timezone": "Europe/Amsterdamm"}, "/timezone", "invalid_timezone"),
    ({"email": "a@example.com", "language": "Dutch please"}, "/language", "invalid_language"),
    ({"email": "a@example.com", "fields": {"seats": "a dozen"}}, "/fields/seats", "wrong_type"),
    ({"email": "a@example.com", "fields": {"birthday": "17/05/1990"}}, "/fields/birthday", "wrong_type"),
    ({"email": "a@example.com", "fields": {"vip": "perhaps"}}, "/fields/vip", "wrong_type"),
    ({"email": "a@example.com", "fields": {"plan": "Gold"}}, "/fields/plan", "wrong_type"),
    ({"email": "a@example.com", "fields": {"seats": 1e200}}, "/fields/seats", "wrong_type"),
    ({"email": "a@example.com", "fields": {"shoe_size": 44}}, "/fields/shoe_size", "unknown_field"),
    ({"email": "a@example.com", "nickname": "Annie"}, "/nickname", "unknown_field"),
    ({"email": "a@example.com", "consent": {"email": {"status": "yes", "source": "x"}}}, "/consent/email/status",
     "invalid"),
    ({"email": "a@example.com", "tags": "vip"}, "/tags", "invalid"),
    ({"email": "a@example.com", "first_name": "x" * 257}, "/first_name", "invalid"),
    ({"first_name": "Ann"}, "", "identifier_required"),
]  # fmt: skip


def test_a_bad_contact_is_a_422_with_the_path_and_nothing_is_stored(stack: Stack) -> None:
    define_fields(stack)
    for body, path, code in BAD_BODIES:
        for method in ("POST", "PUT"):
            answer = stack.http(method, "/contacts", body)
            assert problems(answer) == {path: code}, (method, body)
            assert error_of(answer, 422)["code"] == "invalid_contact"
    assert stored() == []
    assert keys() == {}


def test_every_problem_of_a_body_is_reported_at_once(stack: Stack) -> None:
    define_fields(stack)
    answer = stack.http(
        "POST",
        "/contacts",
        {
            "email": "jürgen@example.com",
            "phone": "call me",
            "timezone": "Atlantis/Capital",
            "nickname": "J",
            "fields": {"seats": "many", "colour": "red"},
        },
    )
    assert problems(answer) == {
        "/email": "invalid_email",
        "/phone": "invalid_phone",
        "/timezone": "invalid_timezone",
        "/nickname": "unknown_field",
        "/fields/seats": "wrong_type",
        "/fields/colour": "unknown_field",
    }
    assert all(d["message"] for d in error_of(answer, 422)["details"])
    assert stored() == []


def test_a_malformed_body_is_refused(stack: Stack) -> None:
    for raw, status, code in [
        ("{not json", 400, "malformed_json"),
        ("[1, 2]", 422, "not_an_object"),
        ("", 400, "empty_body"),
    ]:
        assert error_of(stack.http("POST", "/contacts", raw=raw), status)["code"] == code
    assert stored() == []


def test_a_duplicate_email_or_external_id_on_create_is_a_409_naming_the_contact(stack: Stack) -> None:
    first = create(stack, {"email": "ann@example.com", "external_id": "crm-1", "first_name": "Ann"})
    before = snapshot()

    again = stack.http("POST", "/contacts", {"email": "ANN@example.com ", "first_name": "Someone else"})
    err = error_of(again, 409)
    assert err["code"] == "duplicate_contact"
    assert err["details"] == [{"path": "/email", "contact_id": first["contact_id"]}]

    other = stack.http("POST", "/contacts", {"email": "bo@example.com", "external_id": "crm-1"})
    assert error_of(other, 409)["details"] == [{"path": "/external_id", "contact_id": first["contact_id"]}]
    # Nothing changed: no new contact, no key taken, the first contact as it was.
    assert snapshot() == before


# --- upsert ----------------------------------------------------------------------------------------------


def test_put_upserts_by_email_and_resending_is_harmless(stack: Stack) -> None:
    define_fields(stack)
    body = {"email": "Cas@Example.com", "first_name": "Cas", "tags": ["lead-magnet"], "fields": {"seats": 3}}
    made = contact(stack.http("PUT", "/contacts", body), 201)
    for _ in range(3):
        again = contact(stack.http("PUT", "/contacts", body), 200)
        assert {k: v for k, v in again.items() if k != "updated_at"} == {
            k: v for k, v in made.items() if k != "updated_at"
        }
    changed = contact(stack.http("PUT", "/contacts", {"email": "cas@example.com", "company": "Cas & Co"}))
    assert changed["contact_id"] == made["contact_id"]
    # Fields the body does not name are kept.
    assert (changed["first_name"], changed["company"], changed["fields"]) == ("Cas", "Cas & Co", {"seats": 3})
    assert len(stored()) == 1
    assert keys() == {email_key("cas@example.com"): made["contact_id"]}


def test_put_upserts_by_external_id_before_email(stack: Stack) -> None:
    made = contact(stack.http("PUT", "/contacts", {"external_id": "erp-9", "email": "dee@example.com"}), 201)
    # Same external id, new address: the same contact, and the address key moves with it.
    moved = contact(stack.http("PUT", "/contacts", {"external_id": "erp-9", "email": "dee@new.example"}))
    assert moved["contact_id"] == made["contact_id"]
    assert moved["email"] == "dee@new.example"
    assert keys() == {email_key("dee@new.example"): made["contact_id"], external_key("erp-9"): made["contact_id"]}
    # The old address is free: it makes a new contact.
    other = contact(stack.http("PUT", "/contacts", {"email": "dee@example.com"}), 201)
    assert other["contact_id"] != made["contact_id"]
    # An external id not seen before, with a known address that has no external id: that contact gets it.
    linked = contact(stack.http("PUT", "/contacts", {"external_id": "erp-10", "email": "dee@example.com"}))
    assert linked["contact_id"] == other["contact_id"]
    assert linked["external_id"] == "erp-10"
    assert len(stored()) == 2


def test_put_never_takes_an_address_from_another_contact(stack: Stack) -> None:
    ann = contact(stack.http("PUT", "/contacts", {"external_id": "erp-1", "email": "ann@example.com"}), 201)
    bo = contact(stack.http("PUT", "/contacts", {"external_id": "erp-2", "email": "bo@example.com"}), 201)
    before = snapshot()
    # erp-2 asking for Ann's address: a conflict, not a silent merge.
    taken = stack.http("PUT", "/contacts", {"external_id": "erp-2", "email": "ann@example.com"})
    assert error_of(taken, 409)["details"] == [{"path": "/email", "contact_id": ann["contact_id"]}]
    # A new external id with Ann's address: Ann already has another external id.
    stranger = stack.http("PUT", "/contacts", {"external_id": "erp-3", "email": "ann@example.com"})
    assert error_of(stranger, 409)["details"] == [{"path": "/email", "contact_id": ann["contact_id"]}]
    assert snapshot() == before
    assert bo["contact_id"] != ann["contact_id"]


def test_an_upsert_of_an_address_that_moved_away_makes_a_new_contact(stack: Stack) -> None:
    # The first contact's id derives from its first address; after the address moves, that id is
    # taken by a contact with another address.
    first = create(stack, {"email": "old@example.com"})
    contact(stack.http("PATCH", f"/contacts/{first['contact_id']}", {"email": "new@example.com"}))
    again = contact(stack.http("PUT", "/contacts", {"email": "old@example.com", "first_name": "Olga"}), 201)
    assert again["contact_id"] != first["contact_id"]
    assert contact(stack.http("GET", f"/contacts/{first['contact_id']}"))["first_name"] is None
    same = contact(stack.http("PUT", "/contacts", {"email": "new@example.com", "first_name": "Nina"}))
    assert same["contact_id"] == first["contact_id"]
    assert sorted(c["email"]["S"] for c in stored()) == ["new@example.com", "old@example.com"]


# --- patch -----------------------------------------------------------------------------------------------


def test_patch_changes_only_what_it_names_and_null_clears(stack: Stack) -> None:
    define_fields(stack)
    made = create(stack, FULL)
    cid = made["contact_id"]
    changed = contact(
        stack.http(
            "PATCH",
            f"/contacts/{cid}",
            {"phone": None, "company": "Other BV", "fields": {"vip": None, "seats": 14}, "category": "Customer"},
        )
    )
    assert changed["phone"] is None
    assert changed["company"] == "Other BV"
    assert changed["category"] == "customer"
    assert changed["fields"] == {"plan": "Pro", "seats": 14, "birthday": "1990-05-17", "note": "met at a fair"}
    same = {"email", "external_id", "first_name", "last_name", "language", "tags", "lists", "consent", "created_at"}
    assert {k: changed[k] for k in same} == {k: made[k] for k in same}
    assert changed["updated_at"] > made["updated_at"]
    assert contact(stack.http("GET", f"/contacts/{cid}")) == changed
    assert "phone" not in stored()[0]
    assert "vip" not in stored()[0]["fields"]["M"]


def test_patch_adds_and_removes_tags_and_lists_in_one_request(stack: Stack) -> None:
    made = create(stack, {"email": "eve@example.com", "tags": ["a", "b"], "lists": ["news"]})
    cid = made["contact_id"]
    changed = contact(
        stack.http(
            "PATCH",
            f"/contacts/{cid}",
            {"add_tags": ["c", "d"], "remove_tags": ["a", "zzz"], "add_lists": ["offers"], "remove_lists": ["news"]},
        )
    )
    assert (changed["tags"], changed["lists"]) == (["b", "c", "d"], ["offers"])
    # Replacing the whole set and adjusting it in the same request.
    replaced = contact(stack.http("PATCH", f"/contacts/{cid}", {"tags": ["x", "y"], "remove_tags": ["y"]}))
    assert replaced["tags"] == ["x"]
    emptied = contact(stack.http("PATCH", f"/contacts/{cid}", {"remove_tags": ["x"], "remove_lists": ["offers"]}))
    assert (emptied["tags"], emptied["lists"]) == ([], [])
    again = contact(stack.http("PATCH", f"/contacts/{cid}", {"add_tags": ["z"]}))
    assert again["tags"] == ["z"]


def test_a_custom_field_can_be_set_on_a_contact_without_any(stack: Stack) -> None:
    define_fields(stack)
    made = create(stack, {"email": "fay@example.com"})
    assert made["fields"] == {}
    changed = contact(stack.http("PATCH", f"/contacts/{made['contact_id']}", {"fields": {"note": "first note"}}))
    assert changed["fields"] == {"note": "first note"}
    upserted = contact(stack.http("PUT", "/contacts", {"email": "fay@example.com", "fields": {"seats": "2"}}))
    assert upserted["fields"] == {"note": "first note", "seats": 2}


def test_changing_the_email_moves_the_unique_key(stack: Stack) -> None:
    ann = create(stack, {"email": "ann@example.com"})
    bo = create(stack, {"email": "bo@example.com"})
    moved = contact(stack.http("PATCH", f"/contacts/{ann['contact_id']}", {"email": "Ann@New.Example"}))
    assert moved["email"] == "ann@new.example"
    assert keys() == {email_key("ann@new.example"): ann["contact_id"], email_key("bo@example.com"): bo["contact_id"]}
    # The new address is taken ...
    taken = stack.http("POST", "/contacts", {"email": "ann@new.example"})
    assert error_of(taken, 409)["details"] == [{"path": "/email", "contact_id": ann["contact_id"]}]
    # ... the old one free again.
    create(stack, {"email": "ann@example.com"})
    # A clash with another contact's address is a 409 and changes nothing.
    before = snapshot()
    clash = stack.http("PATCH", f"/contacts/{bo['contact_id']}", {"email": "ann@new.example", "first_name": "Bo"})
    assert error_of(clash, 409)["details"] == [{"path": "/email", "contact_id": ann["contact_id"]}]
    assert snapshot() == before
    lookup = stack.http("GET", "/contacts?email=bo@example.com")
    assert [c["contact_id"] for c in lookup.json_body["contacts"]] == [bo["contact_id"]]


def test_patch_can_change_the_external_id_and_never_leaves_a_contact_without_both(stack: Stack) -> None:
    made = create(stack, {"external_id": "crm-1", "email": "gus@example.com"})
    cid = made["contact_id"]
    changed = contact(stack.http("PATCH", f"/contacts/{cid}", {"external_id": "crm-2", "email": None}))
    assert (changed["external_id"], changed["email"]) == ("crm-2", None)
    assert keys() == {external_key("crm-2"): cid}
    before = snapshot()
    assert problems(stack.http("PATCH", f"/contacts/{cid}", {"external_id": None})) == {"": "identifier_required"}
    assert snapshot() == before


def test_a_bad_patch_changes_nothing(stack: Stack) -> None:
    define_fields(stack)
    made = create(stack, {"email": "hal@example.com", "first_name": "Hal"})
    before = snapshot()
    answer = stack.http(
        "PATCH",
        f"/contacts/{made['contact_id']}",
        {"first_name": "Hank", "phone": "0", "fields": {"seats": "x"}, "add_tags": [""]},
    )
    assert problems(answer) == {"/phone": "invalid_phone", "/fields/seats": "wrong_type", "/add_tags/0": "invalid"}
    assert snapshot() == before


def test_an_unknown_contact_is_a_404(stack: Stack) -> None:
    assert error_of(stack.http("GET", "/contacts/ct_nobody"), 404)["code"] == "contact_not_found"
    assert error_of(stack.http("PATCH", "/contacts/ct_nobody", {"first_name": "X"}), 404)["code"] == (
        "contact_not_found"
    )
    assert stored() == []


# --- list ------------------------------------------------------------------------------------------------


def test_listing_walks_every_contact_once(stack: Stack) -> None:
    made = {create(stack, {"email": f"person{i}@example.com"})["contact_id"] for i in range(23)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        path = "/contacts?limit=5" + (f"&cursor={cursor}" if cursor else "")
        answer = stack.http("GET", path)
        assert answer.status_code == 200, answer.body
        page = ContactPage.model_validate(answer.json_body)
        assert len(page.contacts) <= 5
        seen += [c.contact_id for c in page.contacts]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == made
    assert pages in (5, 6)  # the last full page may be followed by an empty one
    everything = stack.http("GET", "/contacts?limit=200").json_body
    assert {c["contact_id"] for c in everything["contacts"]} == made
    assert everything["next_cursor"] is None


def test_listing_filters_on_email_and_external_id(stack: Stack) -> None:
    ann = create(stack, {"email": "ann@example.com", "external_id": "crm-1"})
    create(stack, {"email": "bo@example.com"})

    def ids(query: str) -> list[str]:
        answer = stack.http("GET", f"/contacts?{query}")
        assert answer.status_code == 200, answer.body
        page = ContactPage.model_validate(answer.json_body)
        assert page.next_cursor is None
        return [c.contact_id for c in page.contacts]

    assert ids("email=ann@example.com") == [ann["contact_id"]]
    assert ids("email=ANN%40Example.com") == [ann["contact_id"]]
    assert ids("external_id=crm-1") == [ann["contact_id"]]
    assert ids("email=ann@example.com&external_id=crm-1") == [ann["contact_id"]]
    assert ids("email=ann@example.com&external_id=crm-2") == []
    assert ids("email=nobody@example.com") == []
    assert ids("email=j%C3%BCrgen@example.com") == []
    assert ids("external_id=crm-404") == []


def test_listing_filters_on_tag_list_and_category(stack: Stack) -> None:
    a = create(stack, {"email": "a@example.com", "tags": ["vip"], "lists": ["news"], "category": "customer"})
    b = create(stack, {"email": "b@example.com", "tags": ["vip"], "category": "lead"})
    create(stack, {"email": "c@example.com", "lists": ["news"]})
    stack.settle()

    def ids(query: str) -> set[str]:
        found: set[str] = set()
        cursor = ""
        while True:
            answer = stack.http("GET", f"/contacts?{query}&limit=1" + (f"&cursor={cursor}" if cursor else ""))
            assert answer.status_code == 200, answer.body
            found |= {c["contact_id"] for c in answer.json_body["contacts"]}
            cursor = answer.json_body["next_cursor"]
            if not cursor:
                return found

    assert ids("tag=vip") == {a["contact_id"], b["contact_id"]}
    assert ids("list=news&tag=vip") == {a["contact_id"]}
    assert ids("category=Lead") == {b["contact_id"]}
    assert ids("tag=nobody") == set()


def test_bad_list_parameters_are_a_400(stack: Stack) -> None:
    create(stack, {"email": "a@example.com"})
    for query, code in [
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
        ("limit=-1", "invalid_limit"),
        ("cursor=not-a-cursor!", "invalid_cursor"),
        # Well-formed, but not a key of the contacts table.
        (f"cursor={encode_cursor({'flow_id': {'S': 'x'}})}", "invalid_cursor"),
        (f"cursor={encode_cursor({'contact_id': {'N': '1'}})}", "invalid_cursor"),
        ("colour=red", "unknown_parameter"),
        ("email=a@example.com&colour=red", "unknown_parameter"),
    ]:
        assert error_of(stack.http("GET", f"/contacts?{query}"), 400)["code"] == code, query


# --- custom field definitions ----------------------------------------------------------------------------


def test_custom_fields_are_defined_once_and_listed(stack: Stack) -> None:
    define_fields(stack)
    listed = stack.http("GET", "/fields")
    assert listed.status_code == 200, listed.body
    page = FieldDefinitionList.model_validate(listed.json_body)
    assert {f.name: f.type for f in page.fields} == {
        "plan": "choice",
        "seats": "number",
        "birthday": "date",
        "vip": "boolean",
        "note": "text",
    }
    assert error_of(stack.http("POST", "/fields", {"name": "seats", "type": "text"}), 409)["code"] == "field_exists"
    assert error_of(stack.http("POST", "/fields", {"name": "email", "type": "text"}), 422)["code"] == "reserved_name"
    assert error_of(stack.http("POST", "/fields", {"name": "size", "type": "choice"}), 422)["code"] == (
        "options_required"
    )
    assert problems(stack.http("POST", "/fields", {"name": "Shoe Size", "type": "colour"})) == {
        "/name": "invalid",
        "/type": "invalid",
    }
    assert len(FieldDefinitionList.model_validate(stack.http("GET", "/fields").json_body).fields) == 5


def test_a_field_defined_in_another_container_is_seen_at_once(stack: Stack) -> None:
    # This container read the (empty) definitions a moment ago and keeps them for a while ...
    assert runtime().fields.definitions() == {}
    # ... another container defines a field: its definitions change, ours are stale.
    runtime().fields.create("shoe_size", label=None, field_type="number", options=[])
    made = create(stack, {"email": "ivy@example.com", "fields": {"shoe_size": "41"}})
    assert made["fields"] == {"shoe_size": 41}


# --- websites ---------------------------------------------------------------------------------------------


def test_a_form_submission_upserts_by_email_and_types_defined_fields(stack: Stack) -> None:
    define_fields(stack)
    assert stack.http("POST", "/forms", {"key": "newsletter", "name": "Newsletter"}).status_code == 201
    known = create(stack, {"email": "jo@example.com", "first_name": "Jo", "tags": ["vip"]})

    answer = stack.http(
        "POST",
        "/forms/newsletter/submissions",
        {"email": "JO@Example.com", "last_name": "Jansen", "seats": "4", "colour": "green", "vip": "no"},
        key=None,
    )
    assert answer.status_code == 202, answer.body
    assert answer.json_body["contact_id"] == known["contact_id"]
    assert answer.json_body["created"] is False
    after = contact(stack.http("GET", f"/contacts/{known['contact_id']}"))
    assert (after["first_name"], after["last_name"], after["tags"]) == ("Jo", "Jansen", ["vip"])
    # Defined fields typed; an undefined one kept as text.
    assert after["fields"] == {"seats": 4, "colour": "green", "vip": False}
    assert after["forms_submitted"] == ["newsletter"]

    new = stack.http(
        "POST",
        "/forms/newsletter/submissions",
        raw="email=kim%40example.com&phone=06+12345678&seats=2",
        content_type="application/x-www-form-urlencoded",
        key=None,
    )
    assert new.status_code == 202, new.body
    assert new.json_body["created"] is True
    kim = contact(stack.http("GET", f"/contacts/{new.json_body['contact_id']}"))
    assert (kim["email"], kim["phone"], kim["fields"]) == ("kim@example.com", "+31612345678", {"seats": 2})
    assert len(stored()) == 2

    wrong = stack.http("POST", "/forms/newsletter/submissions", {"email": "lu@example.com", "seats": "x"}, key=None)
    assert error_of(wrong, 422)["details"][0]["path"] == "/seats"
    assert len(stored()) == 2


# --- races, straight at the repository -------------------------------------------------------------------


def write_of(body: dict[str, Any]) -> Any:
    return check_contact(body, {}, phone_region="NL", now=dt.datetime.now(dt.UTC))


def test_two_creates_of_one_address_make_one_contact(stack: Stack) -> None:
    repo = runtime().contacts
    first = repo.create(write_of({"email": "max@example.com", "first_name": "Max"}))
    with pytest.raises(DuplicateContact) as lost:
        repo.create(write_of({"email": "max@example.com", "first_name": "Maxine"}))
    assert lost.value.contact_id == first.contact_id
    item, cid, created = repo.upsert(write_of({"email": "max@example.com", "first_name": "Maxine"}))
    assert (cid, created) == (first.contact_id, False)
    assert item is not None
    assert item.first_name == "Maxine"
    assert [c["first_name"]["S"] for c in stored()] == ["Maxine"]


def test_an_upsert_that_loses_the_race_to_create_updates_the_winner(stack: Stack) -> None:
    winner: list[str] = []
    other = Contacts()

    def racing_clock() -> dt.datetime:
        # Another request creates the contact between this one's lookups and its create.
        if not winner:
            winner.append(other.create(write_of({"email": "nia@example.com", "external_id": "crm-5"})).contact_id)
        return dt.datetime.now(dt.UTC)

    item, cid, created = Contacts(clock=racing_clock).upsert(
        write_of({"email": "nia@example.com", "external_id": "crm-5", "first_name": "Nia"})
    )
    assert (cid, created) == (winner[0], False)
    assert item is not None
    assert item.first_name == "Nia"
    assert len(stored()) == 1
    assert keys() == {email_key("nia@example.com"): cid, external_key("crm-5"): cid}


def test_a_suppressed_address_never_comes_back_mailable(stack: Stack) -> None:
    repo = runtime().contacts
    repo.suppress("gone@example.com", "erased")
    repo.suppress("bounced@example.com", "bounce")
    made = create(stack, {"email": "Gone@Example.com", "consent": {"email": {"status": "granted", "source": "x"}}})
    assert made["unsubscribed"] == ["email"]
    other = create(stack, {"email": "fine@example.com"})
    assert other["unsubscribed"] == []
    moved = contact(stack.http("PATCH", f"/contacts/{other['contact_id']}", {"email": "bounced@example.com"}))
    assert moved["unsubscribed"] == ["email"]


def test_a_claim_left_by_a_writer_that_died_is_taken_over_once_stale(stack: Stack) -> None:
    # A create that claimed the address and died before writing the contact.
    at = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    ContactKeyModel(key=email_key("lost@example.com"), contact_id="ct_died", claimed_at=at).save()
    # While the claim is fresh, the address is being created by someone else: a duplicate naming it.
    with pytest.raises(DuplicateContact) as busy:
        Contacts(clock=lambda: at + dt.timedelta(seconds=30)).create(write_of({"email": "lost@example.com"}))
    assert busy.value.contact_id == "ct_died"
    assert keys() == {email_key("lost@example.com"): "ct_died"}
    # Later the claim is stale: the create takes the address over.
    made = Contacts(clock=lambda: at + dt.timedelta(minutes=10)).create(write_of({"email": "lost@example.com"}))
    assert keys() == {email_key("lost@example.com"): made.contact_id}
    assert [c["contact_id"]["S"] for c in stored()] == [made.contact_id]


def test_an_address_change_onto_a_stale_claim_takes_it_over(stack: Stack) -> None:
    ContactKeyModel(
        key=email_key("free@example.com"), contact_id="ct_died", claimed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    ).save()
    made = create(stack, {"email": "old@example.com"})
    moved = contact(stack.http("PATCH", f"/contacts/{made['contact_id']}", {"email": "free@example.com"}))
    assert moved["email"] == "free@example.com"
    assert keys() == {email_key("free@example.com"): made["contact_id"]}


def test_a_refused_create_gives_back_what_it_claimed(stack: Stack) -> None:
    taken = create(stack, {"email": "taken@example.com"})
    refused = stack.http("POST", "/contacts", {"email": "taken@example.com", "external_id": "crm-77"})
    assert refused.status_code == 409
    assert refused.json_body["error"]["details"][0]["contact_id"] == taken["contact_id"]
    # The external id it claimed first is free again.
    assert keys() == {email_key("taken@example.com"): taken["contact_id"]}
    other = create(stack, {"email": "other@example.com", "external_id": "crm-77"})
    assert keys()[external_key("crm-77")] == other["contact_id"]
