"""Checking what a marketer or a sync writes to a contact: every problem found at once, with its path,
and values stored in one normal form (lower-case addresses, E.164 phones, typed custom fields)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.contacts.input import (
    MAX_TEXT,
    FieldDefinition,
    InputError,
    check_contact,
    coerce_field,
    normalise_email,
    normalise_phone,
)
from chalicelib.engine.contacts import loose_write

NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
DEFS = {
    "plan": FieldDefinition("plan", "choice", ("Basic", "Pro")),
    "seats": FieldDefinition("seats", "number"),
    "birthday": FieldDefinition("birthday", "date"),
    "vip": FieldDefinition("vip", "boolean"),
    "note": FieldDefinition("note", "text"),
}


def check(body: Any, *, partial: bool = False, region: str = "NL") -> Any:
    return check_contact(body, DEFS, phone_region=region, now=NOW, partial=partial)


def problems(body: Any, *, partial: bool = False) -> dict[str, str]:
    """path → code of every problem of the body."""
    with pytest.raises(InputError) as caught:
        check(body, partial=partial)
    return {p.path: p.code for p in caught.value.problems}


# --- email ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("  ann.de-vries+news@shop.example.nl \n", "ann.de-vries+news@shop.example.nl"),
        # An international domain is sent to in its ASCII (punycode) form.
        ("info@bücher.de", "info@xn--bcher-kva.de"),
    ],
)
def test_addresses_are_stored_in_one_form(raw: str, stored: str) -> None:
    assert normalise_email(raw) == stored
    assert check({"email": raw}).email == stored


@pytest.mark.parametrize(
    "raw",
    [
        "jürgen@example.com",  # SES cannot send to a non-ASCII local part (SMTPUTF8)
        "ann@",
        "ann",
        "ann@example",
        "ann..b@example.com",
        "Ann <ann@example.com>",
    ],
)
def test_addresses_we_cannot_send_to_are_refused(raw: str) -> None:
    assert problems({"email": raw, "external_id": "x-1"}) == {"/email": "invalid_email"}


def test_an_empty_email_with_an_external_id_is_no_email() -> None:
    write = check({"email": "", "external_id": " crm-7 "})
    assert write.email is None
    assert write.external_id == "crm-7"


def test_a_contact_needs_an_email_or_an_external_id() -> None:
    assert problems({"first_name": "Ann"}) == {"": "identifier_required"}
    assert problems({"external_id": "   "}) == {"": "identifier_required"}
    # A partial change need not name the contact again.
    assert check({"first_name": "Ann"}, partial=True).values == {"first_name": "Ann"}


def test_owner_email_is_checked_like_an_email() -> None:
    assert check({"email": "a@example.com", "owner_email": "Sales@Shop.Example"}).values["owner_email"] == (
        "sales@shop.example"
    )
    assert problems({"email": "a@example.com", "owner_email": "sales"}) == {"/owner_email": "invalid_email"}


# --- phone ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "stored"),
    [
        ("06 12345678", "NL", "+31612345678"),
        ("0031 6 1234 5678", "NL", "+31612345678"),
        ("+32 470 12 34 56", "NL", "+32470123456"),
        ("0470 12 34 56", "BE", "+32470123456"),
        ("(020) 555-1234", "NL", "+31205551234"),
    ],
)
def test_phones_are_stored_as_e164(raw: str, region: str, stored: str) -> None:
    assert normalise_phone(raw, region) == stored
    assert check({"email": "a@example.com", "phone": raw}, region=region).values["phone"] == stored


@pytest.mark.parametrize("raw", ["12", "call me", "+31 6 1234 567890", "+999 123"])
def test_bad_phones_are_refused(raw: str) -> None:
    assert problems({"email": "a@example.com", "phone": raw}) == {"/phone": "invalid_phone"}


# --- language, time zone, names ---------------------------------------------------------------------------


def test_language_time_zone_and_names() -> None:
    write = check(
        {
            "email": "a@example.com",
            "first_name": "  Ann ",
            "last_name": "",
            "company": "Shop BV",
            "language": "nl-BE",
            "timezone": "Europe/Amsterdam",
            "category": "Customer",
        }
    )
    assert write.values == {
        "email": "a@example.com",
        "first_name": "Ann",
        "last_name": None,
        "company": "Shop BV",
        "language": "nl-be",
        "timezone": "Europe/Amsterdam",
        "category": "customer",
    }


@pytest.mark.parametrize("language", ["dutch language", "n", "nl_NL", "nl-", "12"])
def test_bad_language_tags_are_refused(language: str) -> None:
    assert problems({"email": "a@example.com", "language": language}) == {"/language": "invalid_language"}


@pytest.mark.parametrize("zone", ["CET+1", "Europe/Amsterdamm", "Mars/Olympus", "+02:00"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    assert problems({"email": "a@example.com", "timezone": zone}) == {"/timezone": "invalid_timezone"}


# --- custom fields ----------------------------------------------------------------------------------------


def test_custom_fields_are_typed_by_their_definitions() -> None:
    write = check(
        {
            "email": "a@example.com",
            "fields": {"plan": "pro", "seats": "12", "birthday": "1990-05-17", "vip": "yes", "note": 42},
        }
    )
    assert write.fields == {"plan": "Pro", "seats": 12, "birthday": "1990-05-17", "vip": True, "note": "42"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("plan", "Enterprise"),
        ("plan", 1),
        ("seats", "twelve"),
        ("seats", True),
        ("seats", [1]),
        ("seats", 1e39),
        ("seats", 1e-200),
        ("birthday", "17-05-1990"),
        ("birthday", "1990-02-30"),
        ("birthday", "1990-05-17 and more"),
        ("birthday", 19900517),
        ("vip", "maybe"),
        ("vip", 1),
        ("note", {"a": 1}),
        ("note", True),
        ("note", "x" * (MAX_TEXT + 1)),
    ],
)
def test_values_that_do_not_fit_the_type_are_refused(name: str, value: Any) -> None:
    assert problems({"email": "a@example.com", "fields": {name: value}}) == {f"/fields/{name}": "wrong_type"}


@pytest.mark.parametrize(
    ("defn", "raw", "stored"),
    [
        (DEFS["seats"], "2,5", 2.5),
        (DEFS["seats"], 3.0, 3),
        (DEFS["seats"], -7, -7),
        (DEFS["seats"], 0, 0),
        (DEFS["birthday"], "1990-05-17T10:00:00+02:00", "1990-05-17"),
        (DEFS["vip"], False, False),
        (DEFS["vip"], " No ", False),
        (DEFS["plan"], " basic", "Basic"),
    ],
)
def test_values_are_stored_in_their_type(defn: FieldDefinition, raw: Any, stored: Any) -> None:
    got = coerce_field(defn, raw, "/x")
    assert got == stored
    assert type(got) is type(stored)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e37, max_value=1e37))
def test_every_number_dynamodb_can_hold_is_kept_and_no_other(value: float) -> None:
    if value != 0 and abs(value) < 1e-130:
        # DynamoDB cannot store it: refused here rather than failing the write.
        with pytest.raises(InputError):
            coerce_field(DEFS["seats"], value, "/fields/seats")
        return
    assert coerce_field(DEFS["seats"], value, "/fields/seats") == value
    # The same number typed in a spreadsheet, with a decimal comma.
    assert coerce_field(DEFS["seats"], repr(value).replace(".", ","), "/fields/seats") == value


def test_an_undefined_custom_field_is_refused_and_null_clears_a_defined_one() -> None:
    assert problems({"email": "a@example.com", "fields": {"shoe_size": 42}}) == {"/fields/shoe_size": "unknown_field"}
    write = check({"fields": {"vip": None}}, partial=True)
    assert write.clear_fields == ["vip"]
    assert write.fields == {}


# --- tags, lists, consent ---------------------------------------------------------------------------------


def test_tags_and_lists_are_trimmed_sets() -> None:
    write = check({"email": "a@example.com", "tags": [" vip", "vip", "beta tester"], "lists": ["news"]})
    assert write.tags == {"vip", "beta tester"}
    assert write.lists == {"news"}
    assert problems({"email": "a@example.com", "tags": ["ok", "  "], "lists": ["a\nb"]}) == {
        "/tags/1": "invalid",
        "/lists/0": "invalid",
    }


def test_consent_keeps_its_proof_in_utc() -> None:
    write = check(
        {
            "email": "a@example.com",
            "consent": {
                "email": {"status": "granted", "source": "form:newsletter", "at": "2026-02-01T10:00:00+01:00"},
                "sms": {"status": "denied", "source": "call centre"},
            },
        }
    )
    assert write.consent == {
        "email": {"status": "granted", "source": "form:newsletter", "at": "2026-02-01T09:00:00+00:00"},
        "sms": {"status": "denied", "source": "call centre", "at": NOW.isoformat()},
    }


def test_consent_needs_a_known_status_and_a_source() -> None:
    found = problems({"email": "a@example.com", "consent": {"email": {"status": "maybe", "source": "x"}, "fax": {}}})
    assert found == {"/consent/email/status": "invalid", "/consent/fax": "unknown_field"}
    assert problems({"email": "a@example.com", "consent": {"sms": {"status": "granted"}}}) == {
        "/consent/sms/source": "required"
    }


# --- the body as a whole ----------------------------------------------------------------------------------


def test_every_problem_of_a_body_is_reported_at_once() -> None:
    found = problems(
        {
            "email": "jürgen@example.com",
            "phone": "12",
            "timezone": "Mars/Base",
            "language": "klingon language",
            "favourite_colour": "blue",
            "first_name": 7,
            "fields": {"seats": "many", "shoe_size": 44},
            "tags": ["", "ok"],
        }
    )
    assert found == {
        "/email": "invalid_email",
        "/phone": "invalid_phone",
        "/timezone": "invalid_timezone",
        "/language": "invalid_language",
        "/favourite_colour": "unknown_field",
        "/first_name": "invalid",
        "/fields/seats": "wrong_type",
        "/fields/shoe_size": "unknown_field",
        "/tags/0": "invalid",
    }


@pytest.mark.parametrize("body", [[], "ann@example.com", None, 3])
def test_a_body_that_is_not_an_object_is_refused(body: Any) -> None:
    assert problems(body) == {"": "invalid"}


def test_tag_changes_belong_to_a_partial_change_only() -> None:
    assert problems({"email": "a@example.com", "add_tags": ["x"]}) == {"/add_tags": "unknown_field"}
    write = check({"add_tags": ["x"], "remove_tags": ["y"], "add_lists": ["n"], "remove_lists": ["m"]}, partial=True)
    assert (write.add_tags, write.remove_tags, write.add_lists, write.remove_lists) == ({"x"}, {"y"}, {"n"}, {"m"})


def test_null_in_a_partial_change_clears_the_field() -> None:
    write = check({"phone": None, "company": None, "email": None}, partial=True)
    assert write.values == {"phone": None, "company": None, "email": None}


# --- the loose writes of websites and flow steps ----------------------------------------------------------


def test_a_form_keeps_undefined_fields_as_text_and_types_defined_ones() -> None:
    write = loose_write(
        {"first_name": " Ann ", "phone": "06 12345678", "seats": "3", "shoe_size": 44, "colour": "blue"},
        DEFS,
        phone_region="NL",
    )
    assert write.values == {"first_name": "Ann", "phone": "+31612345678"}
    assert write.fields == {"seats": 3, "shoe_size": 44, "colour": "blue"}


def test_a_form_value_that_cannot_be_stored_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        loose_write({"phone": "12", "seats": "many"}, DEFS, phone_region="NL")
    assert {p.path: p.code for p in caught.value.problems} == {"/phone": "invalid_phone", "/seats": "wrong_type"}
