"""The compiled examples run in moto's Step Functions interpreter, with the test playing the step worker:
it reads each callback message from SQS and answers with send_task_success / send_task_failure.

Waits are compressed to one second (`execution_input(..., time_scale=...)`), and paths that do not
need the first wait start further in through the dispatch state, so the module runs in seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.flows.compiler import compile_flow, execution_input
from chalicelib.flows.model import Flow
from tests.conftest import example, fake_aws_env

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/sf"
TINY = 1e-9  # every wait becomes one second

# What the worker does with a message: ("success", output), ("failure", error) or None (no answer).
Answer = tuple[str, Any] | None


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in fake_aws_env(REGION).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@dataclass
class Run:
    status: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    entered: list[str] = field(default_factory=list)
    output: dict[str, Any] | None = None

    @property
    def steps(self) -> list[str]:
        return [m.get("step", m["kind"]) for m in self.messages]


def run(name: str, start_at: str, answer: Callable[[dict[str, Any]], Answer], timeout: float = 8.0) -> Run:
    flow = Flow.model_validate(example(name))
    sqs = boto3.client("sqs", region_name=REGION)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="floe-steps")["QueueUrl"]
    machine = sfn.create_state_machine(
        name=name, definition=json.dumps(compile_flow(flow, queue_url=queue_url)), roleArn=ROLE, type="STANDARD"
    )["stateMachineArn"]
    ids = {"contact": "c-1", "participant": "p-1"}
    execution = sfn.start_execution(
        stateMachineArn=machine,
        name=f"{name}-{start_at}",
        input=json.dumps(execution_input(flow, start_at=start_at, ids=ids, time_scale=TINY)),
    )["executionArn"]

    result = Run("RUNNING")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            result.status = described["status"]
            result.output = json.loads(described["output"]) if described.get("output") else None
            break
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            assert body["ids"] == ids and body["execution"] == execution
            result.messages.append(body)
            reply = answer(body)
            if reply is None:
                continue
            outcome, value = reply
            if outcome == "success":
                sfn.send_task_success(taskToken=body["task_token"], output=json.dumps(value))
            else:
                sfn.send_task_failure(taskToken=body["task_token"], error=value, cause="from the test")
        time.sleep(0.02)
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    result.entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
    return result


def routes(route: str) -> Callable[[dict[str, Any]], Answer]:
    """The welcome worker: the `opened` branch chain answers `route`, every other step succeeds."""

    def answer(body: dict[str, Any]) -> Answer:
        return ("success", {"route": route}) if body.get("step") == "opened" else ("success", {})

    return answer


def test_welcome_from_the_start_with_the_guide(aws: None) -> None:
    done = run("welcome", "welcome", routes("guide"))
    assert done.status == "SUCCEEDED"
    assert done.steps == ["welcome", "opened", "guide", "done"]
    assert done.entered == ["floe.dispatch", "welcome", "pause", "opened", "opened.route", "guide", "done"]
    first = done.messages[0]
    assert first["kind"] == "step" and first["retry"] == 0
    dt.datetime.fromisoformat(first["entered"].replace("Z", "+00:00"))  # $$.State.EnteredTime is filled in


@pytest.mark.parametrize(
    ("route", "entered"),
    [
        ("nudge", ["floe.dispatch", "opened", "opened.route", "nudge", "done"]),
        ("done", ["floe.dispatch", "opened", "opened.route", "done"]),
    ],
)
def test_welcome_branch_chain_routes_in_one_task(aws: None, route: str, entered: list[str]) -> None:
    done = run("welcome", "opened", routes(route))
    assert done.status == "SUCCEEDED"
    assert done.entered == entered
    assert "has_phone" not in done.steps  # the chain was decided by the `opened` task


def test_an_exit_ends_the_execution_successfully(aws: None) -> None:
    done = run("welcome", "welcome", lambda body: ("failure", "Floe.Exit"))
    assert done.status == "SUCCEEDED"
    assert done.entered == ["floe.dispatch", "welcome", "floe.exited"]
    assert done.output is not None and done.output["error"]["Error"] == "Floe.Exit"


def test_an_unknown_route_is_recorded_then_fails(aws: None) -> None:
    done = run("welcome", "opened", routes("nowhere"))
    assert done.status == "FAILED"
    assert done.entered[-3:] == ["floe.no_route", "floe.record_failure", "floe.failed"]
    failure = done.messages[-1]
    assert failure["kind"] == "failure"
    assert failure["error"]["Error"] == "Floe.NoRoute"


def test_a_failing_step_is_recorded_then_fails(aws: None) -> None:
    def answer(body: dict[str, Any]) -> Answer:
        return ("failure", "Floe.Permanent") if body["kind"] == "step" else ("success", {})

    done = run("welcome", "guide", answer)
    assert done.status == "FAILED"
    assert done.entered == ["floe.dispatch", "guide", "floe.record_failure", "floe.failed"]
    assert done.messages[-1]["kind"] == "failure" and done.messages[-1]["error"]["Error"] == "Floe.Permanent"


def test_demo_request_times_out_waits_until_and_jumps_back(aws: None) -> None:
    seen: dict[str, int] = {}

    def answer(body: dict[str, Any]) -> Answer:
        step = body["step"]
        seen[step] = seen.get(step, 0) + 1
        if step == "clicked" and seen[step] == 1:
            return None  # no click: the wait times out after one (compressed) second
        if step == "morning":
            return ("success", {"until": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
        return ("success", {})

    done = run("demo-request", "invite", answer)
    assert done.status == "SUCCEEDED"
    assert done.entered == [
        "floe.dispatch",
        "invite",
        "clicked",
        "reminder",
        "morning",
        "morning.until",
        "clicked",
        "thanks",
        "done",
    ]
