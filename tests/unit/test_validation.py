"""Flow validation: every violation at once, each with a JSON Pointer and a code."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.flows.validation import validate
from tests.conftest import example


def codes(doc: Any) -> set[tuple[str, str]]:
    return {(v.path, v.code) for v in validate(doc).violations}


@pytest.mark.parametrize("name", ["welcome", "demo-request"])
def test_examples_are_valid(name: str) -> None:
    result = validate(example(name))
    assert result.ok, result.errors
    assert result.flow is not None


def test_every_violation_is_reported_together(welcome_doc: dict[str, Any]) -> None:
    steps = welcome_doc["steps"]
    del steps[0]["subject"]  # missing content
    steps[1]["next"] = "nowhere"  # dangling
    steps[3]["colour"] = "red"  # unknown field
    steps.append({"id": "orphan", "type": "end"})  # unreachable
    found = codes(welcome_doc)
    assert ("/steps/0/subject", "missing") in found
    assert ("/steps/1/next", "dangling_reference") in found
    assert ("/steps/3/colour", "extra_forbidden") in found
    assert ("/steps/7", "unreachable") in found
    assert validate(welcome_doc).flow is None


def test_missing_next_and_unknown_type(welcome_doc: dict[str, Any]) -> None:
    del welcome_doc["steps"][1]["next"]
    welcome_doc["steps"][2]["type"] = "teleport"
    found = codes(welcome_doc)
    assert ("/steps/1/next", "missing") in found
    assert ("/steps/2/type", "union_tag_invalid") in found


def test_no_end_and_no_end_reachable() -> None:
    doc: dict[str, Any] = {
        "name": "loop",
        "trigger": {"type": "manual"},
        "start_at": "a",
        "steps": [
            {"id": "a", "type": "send_sms", "text": "hi", "next": "b"},
            {"id": "b", "type": "wait", "duration": {"hours": 1}, "next": "a"},
        ],
    }
    assert ("/steps", "no_end") in codes(doc)
    doc["steps"].append({"id": "c", "type": "end"})
    found = codes(doc)
    assert ("/steps/0", "no_end_reachable") in found
    assert ("/steps/2", "unreachable") in found


def test_cycle_without_wait_is_an_error_and_a_wait_breaks_it() -> None:
    doc: dict[str, Any] = {
        "name": "spin",
        "trigger": {"type": "manual"},
        "start_at": "a",
        "steps": [
            {"id": "a", "type": "update_contact", "add_tags": ["x"], "next": "b"},
            {"id": "b", "type": "branch", "condition": {"type": "tag", "tag": "y"}, "yes": "z", "no": "c"},
            {"id": "c", "type": "goto", "target": "a"},
            {"id": "z", "type": "end"},
        ],
    }
    assert ("/steps/0", "cycle_without_wait") in codes(doc)
    doc["steps"][2] = {"id": "c", "type": "wait", "duration": {"minutes": 5}, "next": "a"}
    assert validate(doc).ok


def test_sms_without_phone_filter_is_a_warning_only(welcome_doc: dict[str, Any]) -> None:
    result = validate(welcome_doc)
    assert [(w.path, w.code) for w in result.warnings] == [("/steps/5", "sms_without_phone_filter")]
    welcome_doc["filter"] = {"type": "field", "field": "phone", "op": "exists"}
    assert validate(welcome_doc).warnings == []


def test_engagement_must_name_a_message_step(welcome_doc: dict[str, Any]) -> None:
    welcome_doc["steps"][2]["condition"] = {"type": "engagement", "event": "opened", "step": "nudge"}
    assert ("/steps/2/condition", "opens_not_tracked") in codes(welcome_doc)
    welcome_doc["steps"][2]["condition"] = {"type": "engagement", "event": "clicked", "step": "pause"}
    assert ("/steps/2/condition", "not_a_message") in codes(welcome_doc)


def test_duplicate_ids_and_bad_durations() -> None:
    doc: dict[str, Any] = {
        "name": "dup",
        "trigger": {"type": "manual"},
        "start_at": "a",
        "steps": [
            {"id": "a", "type": "wait", "duration": {}, "next": "b"},
            {"id": "a", "type": "end"},
            {"id": "b", "type": "end"},
        ],
    }
    found = codes(doc)
    assert ("/steps/1/id", "duplicate_id") in found
    assert ("/steps/0/duration", "value_error") in found


def test_not_an_object() -> None:
    assert codes([1, 2]) == {("", "not_an_object")}


def test_a_wait_longer_than_a_year_is_refused(welcome_doc: dict[str, Any]) -> None:
    welcome_doc["steps"][1]["duration"] = {"days": 366}
    assert ("/steps/1/duration", "wait_too_long") in codes(welcome_doc)
    welcome_doc["steps"][1]["duration"] = {"days": 365}
    assert validate(welcome_doc).ok
