"""The Step Functions adapter.

State machine names are deterministic per tenant, flow and version (`floe-<tenant>-<flow>-v<n>`), so
publishing the same version twice finds the machine made the first time. Execution names are
deterministic per participant, so starting one twice is a no-op.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

# Answers to a task that is already closed (answered, timed out, execution stopped) change nothing.
_CLOSED_TASK = frozenset({"TaskDoesNotExist", "TaskTimedOut", "InvalidToken"})


class StateMachines:
    def __init__(self, client: Any, *, role_arn: str, name_prefix: str) -> None:
        self._sfn = client
        self._role_arn = role_arn
        self._prefix = name_prefix

    def name(self, flow_id: str, version: int) -> str:
        return f"{self._prefix}{flow_id}-v{version}"

    def publish(self, flow_id: str, version: int, definition: dict[str, Any]) -> str:
        name = self.name(flow_id, version)
        try:
            out = self._sfn.create_state_machine(
                name=name,
                definition=json.dumps(definition),
                roleArn=self._role_arn,
                type="STANDARD",
                # X-Ray traces each execution with its SQS tasks; the states role may write traces (infra/).
                tracingConfiguration={"enabled": True},
                tags=[{"key": "floe:flow", "value": flow_id}, {"key": "floe:version", "value": str(version)}],
            )
            return str(out["stateMachineArn"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "StateMachineAlreadyExists":
                raise
        for page in self._sfn.get_paginator("list_state_machines").paginate():
            for machine in page["stateMachines"]:
                if machine["name"] == name:
                    return str(machine["stateMachineArn"])
        raise RuntimeError(f"state machine {name} exists but cannot be listed")

    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
        try:
            out = self._sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            # Same name, different input: the participant started already; its execution stands.
            return state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + name
        return str(out["executionArn"])

    def stop(self, execution_arn: str, *, cause: str) -> None:
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error="Floe.FlowEnded", cause=cause)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("ExecutionDoesNotExist",):
                raise


class TaskAnswers:
    def __init__(self, client: Any) -> None:
        self._sfn = client

    def succeed(self, token: str, output: dict[str, Any]) -> bool:
        """False when the task was closed already (a duplicate answer)."""
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _CLOSED_TASK:
                return False
            raise
        return True

    def fail(self, token: str, *, error: str, cause: str) -> bool:
        try:
            self._sfn.send_task_failure(taskToken=token, error=error, cause=cause[:32768])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _CLOSED_TASK:
                return False
            raise
        return True
