"""When a `wait_until` ends: dates, anniversaries and time zones."""

from __future__ import annotations

import datetime as dt

from chalicelib.contacts.model import Contact
from chalicelib.engine.steps import _moment
from chalicelib.flows.model import WaitUntil

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def step(**kw: object) -> WaitUntil:
    return WaitUntil.model_validate({"id": "w", "type": "wait_until", "next": "x", **kw})


def test_a_fixed_date_at_a_time_of_day_in_the_contacts_zone() -> None:
    anna = Contact("c1", timezone="Europe/Amsterdam")
    moment, note = _moment(step(date="2027-01-04", time_of_day="09:30"), anna, NOW)
    assert moment == dt.datetime(2027, 1, 4, 8, 30, tzinfo=dt.UTC)
    assert "Europe/Amsterdam" in note


def test_unknown_zone_means_utc_and_a_past_date_means_now() -> None:
    bram = Contact("c2", timezone="Mars/Olympus")
    assert _moment(step(date="2027-01-04"), bram, NOW)[0] == dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
    assert _moment(step(date="2020-01-01"), bram, NOW)[0] == NOW


def test_a_birthday_field_waits_for_the_next_anniversary() -> None:
    cleo = Contact("c3", fields={"birthday": "1990-02-14"})
    moment, _ = _moment(step(field="fields.birthday", time_of_day="08:00"), cleo, NOW)
    assert moment == dt.datetime(2027, 2, 14, 8, 0, tzinfo=dt.UTC)


def test_a_leap_day_birthday_falls_on_28_february() -> None:
    dirk = Contact("c4", fields={"birthday": "2000-02-29"})
    assert _moment(step(field="fields.birthday"), dirk, NOW)[0] == dt.datetime(2027, 2, 28, 9, 0, tzinfo=dt.UTC)


def test_a_future_date_field_is_that_date() -> None:
    eva = Contact("c5", fields={"renewal": "2027-03-01"})
    assert _moment(step(field="fields.renewal"), eva, NOW)[0] == dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)


def test_a_missing_field_ends_the_wait_at_once_and_says_why() -> None:
    moment, note = _moment(step(field="fields.birthday"), Contact("c6"), NOW)
    assert moment == NOW
    assert note == "fields.birthday holds no date"
