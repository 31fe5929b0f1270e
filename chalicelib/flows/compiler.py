"""Compile a flow to an Amazon States Language definition (a dict), without any AWS call.

Pure stages, parse → validate → lower → emit, each a function of the previous one's output:

1. parse    - the JSON document becomes a typed `Flow` (pydantic, inside `validation.validate`);
2. validate - `validation.validate` reports every violation; `compile_document` stops on errors;
3. lower    - `lower(flow)` turns steps into an ordered list of state nodes (names and edges only,
              every edge resolved through gotos, which compile to no state);
4. emit     - `emit(...)` drops states nothing refers to and spells the rest in ASL (JSONPath only),
              with the queue URL, retry and catch policy filled in.

The step worker depends on the lowering rules: every step is a callback task `<step id>` that sends
`{"kind": "step", "step": ..., "task_token": ..., "ids": ...}` to the queue; a branch task answers
`{"route": <step id>}` and is followed by the Choice `<id>.route`; a `wait_until` task answers
`{"until": <ISO-8601 UTC timestamp>}` and is followed by the Wait `<id>.until`. Internal states have a
"." in their names (`floe.dispatch`, ...), so they never collide with step ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, assert_never

from chalicelib.flows.graph import resolve, route_destinations
from chalicelib.flows.model import (
    Branch,
    End,
    Flow,
    Goto,
    Notify,
    SendEmail,
    SendSms,
    UpdateContact,
    Wait,
    WaitFor,
    WaitUntil,
    Webhook,
)
from chalicelib.flows.validation import Violation, validate

__all__ = [
    "DISPATCH",
    "EXITED",
    "FAILED",
    "NO_ROUTE",
    "RECORD_FAILURE",
    "InvalidFlow",
    "compile_document",
    "compile_flow",
    "execution_input",
    "resolve",
    "route_destinations",
    "state_name",
]

DISPATCH: Final = "floe.dispatch"
EXITED: Final = "floe.exited"
NO_ROUTE: Final = "floe.no_route"
RECORD_FAILURE: Final = "floe.record_failure"
FAILED: Final = "floe.failed"

CALLBACK_RESOURCE: Final = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
RETRYABLE_ERROR: Final = "Floe.Retryable"
EXIT_ERROR: Final = "Floe.Exit"


class InvalidFlow(ValueError):
    """The document has errors; `violations` holds everything validation reported."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        errors = [v for v in self.violations if v.severity == "error"]
        shown = "; ".join(f"{v.path or '/'}: {v.message}" for v in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"the flow has {len(errors)} error(s): {shown}{more}")


def state_name(step_id: str) -> str:
    """The ASL state of a step: its id."""
    return step_id


def route_state(step_id: str) -> str:
    return f"{step_id}.route"


def until_state(step_id: str) -> str:
    return f"{step_id}.until"


# --- public entry points -----------------------------------------------------------------------------


def compile_document(doc: Any, *, queue_url: str) -> dict[str, Any]:
    """Validate a flow document and compile it; raises InvalidFlow when validation finds errors."""
    result = validate(doc)
    if not result.ok or result.flow is None:
        raise InvalidFlow(result.violations)
    return compile_flow(result.flow, queue_url=queue_url)


def compile_flow(flow: Flow, *, queue_url: str) -> dict[str, Any]:
    """The ASL definition of a (validated) flow."""
    return emit(flow.name, lower(flow), queue_url=queue_url)


def execution_input(flow: Flow, *, start_at: str, ids: dict[str, Any], time_scale: float = 1.0) -> dict[str, Any]:
    """The input of an execution that starts at step `start_at`.

    `waits` holds the seconds of every `wait` (its duration) and `wait_for` (its timeout), read by
    `SecondsPath` / `TimeoutSecondsPath`; `time_scale` < 1 compresses them for demos and tests
    (never below one second).
    """
    if not time_scale > 0:
        raise ValueError("time_scale must be greater than zero")
    if start_at not in flow.by_id:
        raise ValueError(f"{start_at!r} is no step of this flow")
    waits: dict[str, int] = {}
    for step in flow.steps:
        if isinstance(step, Wait):
            waits[step.id] = max(1, round(step.duration.total_seconds * time_scale))
        elif isinstance(step, WaitFor):
            waits[step.id] = max(1, round(step.timeout.total_seconds * time_scale))
    return {"start_at": start_at, "ids": ids, "waits": waits}


# --- lower: steps -> state nodes ---------------------------------------------------------------------


@dataclass(frozen=True)
class StepTask:
    """The callback task of a step; `next` None ends the execution (an `end` step)."""

    name: str
    step_id: str
    next: str | None
    timeout_path: str | None = None
    timeout_next: str | None = None


@dataclass(frozen=True)
class WaitSeconds:
    name: str
    seconds_path: str
    next: str


@dataclass(frozen=True)
class WaitTimestamp:
    name: str
    timestamp_path: str
    next: str


@dataclass(frozen=True)
class StringChoice:
    """A Choice on one string variable: `(value, next state)` per case, else `default`."""

    name: str
    variable: str
    cases: tuple[tuple[str, str], ...]
    default: str


@dataclass(frozen=True)
class NoRoute:
    name: str = NO_ROUTE


@dataclass(frozen=True)
class RecordFailure:
    name: str = RECORD_FAILURE


@dataclass(frozen=True)
class Failed:
    name: str = FAILED


@dataclass(frozen=True)
class Exited:
    name: str = EXITED


Node = StepTask | WaitSeconds | WaitTimestamp | StringChoice | NoRoute | RecordFailure | Failed | Exited


def lower(flow: Flow) -> list[Node]:
    """Every state the flow may need, in emission order: dispatch, steps (document order), internals."""

    def target(step_id: str) -> str:
        return state_name(resolve(flow, step_id))

    nodes: list[Node] = [
        StringChoice(
            DISPATCH,
            "$.start_at",
            tuple((step.id, target(step.id)) for step in flow.steps),
            target(flow.start_at),
        )
    ]
    for step in flow.steps:
        name = state_name(step.id)
        match step:
            case SendEmail() | SendSms() | UpdateContact() | Notify() | Webhook():
                nodes.append(StepTask(name, step.id, target(step.next)))
            case End():
                nodes.append(StepTask(name, step.id, None))
            case Wait():
                nodes.append(WaitSeconds(name, f"$.waits.{step.id}", target(step.next)))
            case WaitUntil():
                nodes.append(StepTask(name, step.id, until_state(step.id)))
                nodes.append(WaitTimestamp(until_state(step.id), "$.last.until", target(step.next)))
            case WaitFor():
                nodes.append(
                    StepTask(
                        name,
                        step.id,
                        target(step.next),
                        timeout_path=f"$.waits.{step.id}",
                        timeout_next=target(step.timeout_next),
                    )
                )
            case Branch():
                nodes.append(StepTask(name, step.id, route_state(step.id)))
                cases = tuple((dest, state_name(dest)) for dest in route_destinations(flow, step.id))
                nodes.append(StringChoice(route_state(step.id), "$.last.route", cases, NO_ROUTE))
            case Goto():
                pass  # a jump: edges into it were resolved to its target
            case _:
                assert_never(step)
    nodes.extend([Exited(), NoRoute(), RecordFailure(), Failed()])
    return nodes


def targets(node: Node) -> list[str]:
    """The states a node can continue at (Next, Choices, Default and Catch)."""
    match node:
        case StepTask():
            timeout = [node.timeout_next] if node.timeout_next is not None else []
            following = [node.next] if node.next is not None else []
            return [*timeout, EXITED, RECORD_FAILURE, *following]
        case WaitSeconds() | WaitTimestamp():
            return [node.next]
        case StringChoice():
            return [nxt for _, nxt in node.cases] + [node.default]
        case NoRoute():
            return [RECORD_FAILURE]
        case RecordFailure():
            return [FAILED]
        case Failed() | Exited():
            return []
        case _:
            assert_never(node)


# --- emit: state nodes -> ASL --------------------------------------------------------------------------


def _retry() -> list[dict[str, Any]]:
    return [
        {
            "ErrorEquals": [RETRYABLE_ERROR],
            "IntervalSeconds": 30,
            "BackoffRate": 2.0,
            "MaxAttempts": 6,
            "MaxDelaySeconds": 900,
            "JitterStrategy": "FULL",
        }
    ]


def _catch() -> list[dict[str, Any]]:
    return [
        {"ErrorEquals": [EXIT_ERROR], "ResultPath": "$.error", "Next": EXITED},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": RECORD_FAILURE},
    ]


def emit(flow_name: str, nodes: Iterable[Node], *, queue_url: str) -> dict[str, Any]:
    """The ASL document: the nodes reachable from the dispatch, in the order given."""
    ordered = list(nodes)
    by_name = {node.name: node for node in ordered}
    if len(by_name) != len(ordered):
        raise ValueError("two states share a name")
    reachable: set[str] = set()
    todo = [DISPATCH]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        if name not in by_name:
            raise ValueError(f"a state refers to {name!r}, which is no state")
        reachable.add(name)
        todo.extend(targets(by_name[name]))
    return {
        "Comment": f"{flow_name} (compiled by Floe)",
        "StartAt": DISPATCH,
        "States": {node.name: _state(node, queue_url) for node in ordered if node.name in reachable},
    }


def _state(node: Node, queue_url: str) -> dict[str, Any]:
    match node:
        case StepTask():
            state: dict[str, Any] = {
                "Type": "Task",
                "Resource": CALLBACK_RESOURCE,
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {
                        "kind": "step",
                        "step": node.step_id,
                        "task_token.$": "$$.Task.Token",
                        "ids.$": "$.ids",
                        "execution.$": "$$.Execution.Id",
                        "entered.$": "$$.State.EnteredTime",
                        "retry.$": "$$.State.RetryCount",
                    },
                },
                "ResultPath": "$.last",
            }
            if node.timeout_path is not None:
                state["TimeoutSecondsPath"] = node.timeout_path
            state["Retry"] = _retry()
            catch = _catch()
            if node.timeout_next is not None:
                catch.insert(0, {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.last", "Next": node.timeout_next})
            state["Catch"] = catch
            if node.next is None:
                state["End"] = True
            else:
                state["Next"] = node.next
            return state
        case WaitSeconds():
            return {"Type": "Wait", "SecondsPath": node.seconds_path, "Next": node.next}
        case WaitTimestamp():
            return {"Type": "Wait", "TimestampPath": node.timestamp_path, "Next": node.next}
        case StringChoice():
            return {
                "Type": "Choice",
                "Choices": [
                    {"Variable": node.variable, "StringEquals": value, "Next": nxt} for value, nxt in node.cases
                ],
                "Default": node.default,
            }
        case NoRoute():
            return {
                "Type": "Pass",
                "Result": {
                    "Error": "Floe.NoRoute",
                    "Cause": "the branch answered a route the state machine does not know",
                },
                "ResultPath": "$.error",
                "Next": RECORD_FAILURE,
            }
        case RecordFailure():
            return {
                "Type": "Task",
                "Resource": CALLBACK_RESOURCE,
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {
                        "kind": "failure",
                        "task_token.$": "$$.Task.Token",
                        "ids.$": "$.ids",
                        "execution.$": "$$.Execution.Id",
                        "error.$": "$.error",
                    },
                },
                "ResultPath": "$.last",
                "Retry": _retry(),
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": FAILED}],
                "Next": FAILED,
            }
        case Failed():
            return {"Type": "Fail", "Error": "Floe.StepFailed", "Cause": "a step failed; the participant records why"}
        case Exited():
            return {"Type": "Succeed"}
        case _:
            assert_never(node)
