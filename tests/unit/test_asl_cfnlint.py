"""An independent check of the compiled definitions: cfn-lint's state machine rules (E3601) on a
CloudFormation template that embeds each compiled example.

cfn-lint validates the structure of every state (types, fields, Next/End, paths) and that StartAt
exists; it does not check that a `Next` names an existing state (test_compiler checks that).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.rules import Match

from chalicelib.flows.compiler import compile_document
from tests.conftest import EXAMPLES, example

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/floe-steps"
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.json"))


def template(machines: dict[str, dict[str, Any]]) -> str:
    """A template with one STANDARD state machine per (logical id, definition)."""
    return json.dumps(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {
                logical_id: {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "Definition": definition,
                        "RoleArn": "arn:aws:iam::123456789012:role/sf",
                        "StateMachineType": "STANDARD",
                    },
                }
                for logical_id, definition in machines.items()
            },
        }
    )


def problems(machines: dict[str, dict[str, Any]]) -> dict[str, list[Match]]:
    """cfn-lint's findings per state machine (one lint run: loading the rules takes most of the time)."""
    found: dict[str, list[Match]] = {logical_id: [] for logical_id in machines}
    for match in lint(template(machines), regions=["eu-west-1"]):
        path = getattr(match, "path", None) or ["", ""]
        found.setdefault(str(path[1]), []).append(match)
    return found


def shown(matches: list[Match]) -> str:
    return "\n".join(f"{m.rule.id} {m.message}" for m in matches)


@pytest.fixture(scope="module")
def welcome_asl() -> dict[str, Any]:
    return compile_document(example("welcome"), queue_url=QUEUE_URL)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_compiled_examples_pass_cfn_lint(name: str) -> None:
    found = problems({"FlowMachine": compile_document(example(name), queue_url=QUEUE_URL)})
    matches = [m for ms in found.values() for m in ms]
    assert matches == [], shown(matches)


def _set(state: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(definition: dict[str, Any]) -> None:
        definition["States"][state][key] = value

    return change


def _drop(state: str, key: str) -> Callable[[dict[str, Any]], None]:
    def change(definition: dict[str, Any]) -> None:
        del definition["States"][state][key]

    return change


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "StartAtMissingState": lambda d: d.__setitem__("StartAt", "nowhere"),
    "NextAndEnd": _set("welcome", "End", True),
    "NeitherNextNorEnd": _drop("pause", "Next"),
    "UnknownField": _set("pause", "Sekonds", 3),
    "ResultPathNotAPath": _set("welcome", "ResultPath", "last"),
    "UnknownStateType": _set("floe.failed", "Type", "Crash"),
}


@pytest.fixture(scope="module")
def broken_report(welcome_asl: dict[str, Any]) -> dict[str, list[Match]]:
    machines = {"Intact": welcome_asl}
    for logical_id, breakage in BREAKAGES.items():
        machines[logical_id] = copy.deepcopy(welcome_asl)
        breakage(machines[logical_id])
    return problems(machines)


@pytest.mark.parametrize("logical_id", BREAKAGES)
def test_cfn_lint_reports_a_broken_definition(broken_report: dict[str, list[Match]], logical_id: str) -> None:
    matches = broken_report[logical_id]
    assert any(m.rule.id == "E3601" for m in matches), shown(matches)


def test_cfn_lint_attributes_findings_to_the_broken_machine_only(broken_report: dict[str, list[Match]]) -> None:
    assert broken_report["Intact"] == []
    assert set(broken_report) == {"Intact", *BREAKAGES}
