"""A flow whose message templates cannot be parsed is refused when saved, with the template's path."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.engine.errors import Unprocessable
from chalicelib.engine.lifecycle import checked


def test_broken_templates_are_reported_with_their_paths(welcome_doc: dict[str, Any]) -> None:
    welcome_doc["steps"][0]["subject"] = "Hi {{ contact.first_name"
    welcome_doc["steps"][5]["text"] = "{% if %}"
    with pytest.raises(Unprocessable) as raised:
        checked(welcome_doc)
    errors = {(d["path"], d["code"]) for d in raised.value.details if d["severity"] == "error"}
    assert errors == {("/steps/0/subject", "template_syntax"), ("/steps/5/text", "template_syntax")}


def test_valid_templates_pass(welcome_doc: dict[str, Any]) -> None:
    flow, result = checked(welcome_doc)
    assert flow.name == "Welcome"
    assert [w.code for w in result.warnings] == ["sms_without_phone_filter"]
