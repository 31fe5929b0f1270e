"""Every AWS call the app makes is allowed by the stage's IAM policies (`autogen_policy` is off).

A flow runs (email, SMS, a wait, a branch), contacts are created, changed, imported, segmented and
erased, and the change streams are read, with every request of the app's own clients recorded. Each
request's IAM action (`dynamodb:PutItem`, `ses:SendEmail`, …) must be allowed by a statement of the
stage's policy files: a missing one would only show in AWS, as an AccessDenied. A DynamoDB
transaction is authorised item by item by the actions underneath it (`PutItem`, `UpdateItem`,
`DeleteItem`, `ConditionCheckItem`, `GetItem`): there is no IAM action for the transaction itself.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from tests.bench import Meter, attach_runtime
from tests.functional.conftest import Stack
from tests.functional.test_imports import upload
from tests.functional.test_package import PROJECT, as_list, policy_files
from tests.functional.test_welcome_flow import finished, start_welcome, submit

# botocore's service names → IAM's action prefixes.
PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "stepfunctions": "states", "sesv2": "ses", "sns": "sns"}


# A transaction's parts → the IAM action each needs.
TRANSACT_PARTS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_actions(service: str, operation: str, params: dict[str, Any]) -> set[str]:
    prefix = PREFIX[service]
    if operation == "TransactWriteItems":
        return {f"{prefix}:{TRANSACT_PARTS[part]}" for item in params["TransactItems"] for part in item}
    if operation == "TransactGetItems":
        return {f"{prefix}:GetItem"}
    return {f"{prefix}:{operation}"}


class Recorder(Meter):
    """The bench's meter, also keeping the IAM actions of the requests made during a phase."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: set[str] = set()

    def _given(self, params: Any = None, model: Any = None, **kw: Any) -> None:
        super()._given(params=params, **kw)
        if self.phase is not None and model is not None:
            self.actions |= iam_actions(model.service_model.service_name, model.name, dict(params or {}))


def allowed_actions(stage: str) -> list[str]:
    actions: list[str] = []
    for file in set(policy_files(stage).values()):
        for statement in json.loads((PROJECT / ".chalice" / file).read_text())["Statement"]:
            if statement["Effect"] == "Allow":
                actions += as_list(statement["Action"])
    return actions


def test_every_aws_call_the_app_makes_is_allowed_by_the_policies(stack: Stack) -> None:
    meter = Recorder()
    attach_runtime(meter)
    meter.path = "policy"
    with meter.phase_of("scenario"):
        flow_id = start_welcome(stack)
        with_phone = submit(stack, email="anna@example.com", first_name="Anna", phone="+31612345678").json_body
        without = submit(stack, email="ben@example.com", first_name="Ben").json_body
        stack.run_until(lambda: finished(stack, flow_id, f"{with_phone['contact_id']}.1"))
        stack.run_until(lambda: finished(stack, flow_id, f"{without['contact_id']}.1"))
        made = stack.http("PUT", "/contacts", {"email": "cleo@example.com", "tags": ["vip"]}).json_body
        stack.http("PATCH", f"/contacts/{made['contact_id']}", {"email": "cleo@example.org"})
        upload(stack, "email,first_name\ndaan@example.com,Daan\n")
        vips = {"name": "VIPs", "condition": {"type": "tag", "tag": "vip"}}
        segment = stack.http("POST", "/segments", vips).json_body
        stack.settle()
        assert stack.http("GET", f"/segments/{segment['segment_id']}/count").status_code == 200
        assert stack.http("DELETE", f"/contacts/{made['contact_id']}").status_code == 200
        stack.settle()
    called = meter.actions
    assert {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "ses:SendEmail",
        "sns:Publish",
        "states:StartExecution",
    } <= called
    # The scenario reached every service the app uses.
    assert {a.split(":")[0] for a in called} == set(PREFIX.values())
    allowed = allowed_actions("dev")
    missing = sorted(a for a in called if not any(fnmatch.fnmatchcase(a, pattern) for pattern in allowed))
    assert missing == []
