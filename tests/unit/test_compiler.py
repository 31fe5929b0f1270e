"""The flow compiler: the lowering rules the step worker relies on, and golden files per example.

Regenerate the golden files with `FLOE_UPDATE_GOLDEN=1 pytest tests/unit/test_compiler.py`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.flows.compiler import (
    DISPATCH,
    EXITED,
    FAILED,
    NO_ROUTE,
    RECORD_FAILURE,
    InvalidFlow,
    compile_document,
    compile_flow,
    execution_input,
    state_name,
)
from chalicelib.flows.graph import resolve, route_destinations
from chalicelib.flows.model import Branch, Flow, Goto, Wait, WaitFor
from tests.conftest import EXAMPLES, example

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/floe-steps"
GOLDEN = Path(__file__).resolve().parent.parent / "golden"
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.json"))
CALLBACK = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def flow_of(name: str) -> Flow:
    return Flow.model_validate(example(name))


def compiled(name: str) -> dict[str, Any]:
    return compile_document(example(name), queue_url=QUEUE_URL)


def make_flow(steps: list[dict[str, Any]], start_at: str | None = None) -> Flow:
    """A flow with just the given steps (the model does not check the graph; validation does)."""
    return Flow.model_validate(
        {"name": "Test", "trigger": {"type": "manual"}, "start_at": start_at or steps[0]["id"], "steps": steps}
    )


def email(sid: str, nxt: str) -> dict[str, Any]:
    return {"id": sid, "type": "send_email", "subject": "Hi", "html": "<p>Hi</p>", "next": nxt}


def branch(sid: str, yes: str, no: str) -> dict[str, Any]:
    return {"id": sid, "type": "branch", "condition": {"type": "tag", "tag": sid}, "yes": yes, "no": no}


def goto(sid: str, target: str) -> dict[str, Any]:
    return {"id": sid, "type": "goto", "target": target}


def end(sid: str = "done") -> dict[str, Any]:
    return {"id": sid, "type": "end"}


def edges(state: dict[str, Any]) -> Iterator[str]:
    """Every state name a state can continue at."""
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for choice in state.get("Choices", []):
        yield choice["Next"]
    for catch in state.get("Catch", []):
        yield catch["Next"]


def step_tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in definition["States"].items()
        if s["Type"] == "Task" and s["Parameters"]["MessageBody"]["kind"] == "step"
    }


def dispatch_cases(definition: dict[str, Any]) -> dict[str, str]:
    return {c["StringEquals"]: c["Next"] for c in definition["States"][DISPATCH]["Choices"]}


def route_cases(definition: dict[str, Any], branch_id: str) -> list[str]:
    route = definition["States"][f"{branch_id}.route"]
    assert route["Type"] == "Choice"
    assert route["Default"] == NO_ROUTE
    assert all(c["Variable"] == "$.last.route" for c in route["Choices"])
    assert all(c["Next"] == c["StringEquals"] for c in route["Choices"])
    return [c["StringEquals"] for c in route["Choices"]]


# --- golden files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_golden(name: str) -> None:
    text = json.dumps(compiled(name), indent=2) + "\n"
    path = GOLDEN / f"{name}.asl.json"
    if os.environ.get("FLOE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with FLOE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} compiles differently from {path.name}; review, then regenerate"


def test_every_example_has_a_golden_file() -> None:
    assert sorted(p.name.removesuffix(".asl.json") for p in GOLDEN.glob("*.asl.json")) == EXAMPLE_NAMES


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_compilation_is_deterministic(name: str) -> None:
    first = json.dumps(compiled(name))
    assert json.dumps(compiled(name)) == first
    # Also from the typed flow directly, and whatever the order of keys in the document.
    reordered = json.loads(json.dumps(example(name), sort_keys=True))
    assert json.dumps(compile_document(reordered, queue_url=QUEUE_URL)) == first
    assert json.dumps(compile_flow(flow_of(name), queue_url=QUEUE_URL)) == first


# --- structure -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_transition_lands_on_a_state(name: str) -> None:
    definition = compiled(name)
    states = definition["States"]
    assert definition["StartAt"] == DISPATCH
    assert next(iter(states)) == DISPATCH
    assert definition["Comment"] == f"{flow_of(name).name} (compiled by Floe)"
    for state_id, state in states.items():
        for target in edges(state):
            assert target in states, f"{state_id} continues at {target!r}, which is no state"
        assert ("Next" in state) + ("End" in state) <= 1
        if state["Type"] in ("Task", "Wait", "Pass"):
            assert ("Next" in state) != ("End" in state), state_id


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_state_is_reachable_and_only_known_features_are_used(name: str) -> None:
    definition = compiled(name)
    states = definition["States"]
    seen: set[str] = set()
    todo = [DISPATCH]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(edges(states[current]))
    assert seen == set(states)
    assert "QueryLanguage" not in definition
    for state in states.values():
        assert state["Type"] in {"Task", "Wait", "Choice", "Pass", "Succeed", "Fail"}
        assert not {"QueryLanguage", "Assign", "Arguments", "Output"} & set(state)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_internal_states_cannot_collide_with_steps(name: str) -> None:
    definition = compiled(name)
    step_ids = {s.id for s in flow_of(name).steps}
    for state_id in definition["States"]:
        assert len(state_id) <= 80  # the ASL limit on state names
        if state_id not in step_ids:
            assert "." in state_id and not STEP_ID.match(state_id)
    assert {EXITED, RECORD_FAILURE, FAILED} <= set(definition["States"])


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_action_task_retries_and_catches(name: str) -> None:
    definition = compiled(name)
    tasks = [s for s in definition["States"].values() if s["Type"] == "Task"]
    assert tasks
    for task in tasks:
        assert task["Resource"] == CALLBACK
        assert task["Parameters"]["QueueUrl"] == QUEUE_URL
        assert task["Parameters"]["MessageBody"]["task_token.$"] == "$$.Task.Token"
        assert task["Parameters"]["MessageBody"]["ids.$"] == "$.ids"
        assert task["ResultPath"] == "$.last"
        [retry] = task["Retry"]
        assert retry["ErrorEquals"] == ["Floe.Retryable"]
        assert retry["JitterStrategy"] == "FULL" and retry["MaxAttempts"] > 0 and retry["BackoffRate"] > 1
    for sid, task in step_tasks(definition).items():
        body = task["Parameters"]["MessageBody"]
        assert body["step"] == sid
        assert body["entered.$"] == "$$.State.EnteredTime" and body["retry.$"] == "$$.State.RetryCount"
        catches = [(c["ErrorEquals"], c["ResultPath"], c["Next"]) for c in task["Catch"]]
        assert catches[-2:] == [(["Floe.Exit"], "$.error", EXITED), (["States.ALL"], "$.error", RECORD_FAILURE)]
    # The failure recorder cannot loop into itself: if recording fails, the execution fails.
    recorder = definition["States"][RECORD_FAILURE]
    assert recorder["Parameters"]["MessageBody"]["kind"] == "failure"
    assert recorder["Parameters"]["MessageBody"]["error.$"] == "$.error"
    assert [c["Next"] for c in recorder["Catch"]] == [FAILED]
    assert recorder["Next"] == FAILED
    assert definition["States"][FAILED]["Type"] == "Fail"
    assert definition["States"][EXITED] == {"Type": "Succeed"}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_dispatch_covers_every_step(name: str) -> None:
    flow = flow_of(name)
    definition = compiled(name)
    dispatch = definition["States"][DISPATCH]
    assert all(c["Variable"] == "$.start_at" for c in dispatch["Choices"])
    cases = dispatch_cases(definition)
    assert list(cases) == [s.id for s in flow.steps]
    for sid, target in cases.items():
        assert target == state_name(resolve(flow, sid))
    assert dispatch["Default"] == state_name(flow.start_at)


def test_action_steps_continue_at_next() -> None:
    states = compiled("demo-request")["States"]
    assert [states[s]["Next"] for s in ("tag", "alert", "crm", "invite", "reminder", "thanks")] == [
        "alert",
        "crm",
        "invite",
        "clicked",
        "morning",
        "done",
    ]
    assert states["done"]["End"] is True and "Next" not in states["done"]


def test_wait_reads_its_seconds_from_the_input() -> None:
    pause = compiled("welcome")["States"]["pause"]
    assert pause == {"Type": "Wait", "SecondsPath": "$.waits.pause", "Next": "opened"}


def test_wait_for_times_out_to_timeout_next() -> None:
    clicked = compiled("demo-request")["States"]["clicked"]
    assert clicked["TimeoutSecondsPath"] == "$.waits.clicked"
    assert clicked["Next"] == "thanks"
    assert clicked["Catch"][0] == {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.last", "Next": "reminder"}
    assert len(clicked["Catch"]) == 3


def test_wait_until_asks_the_worker_then_waits_for_the_timestamp() -> None:
    states = compiled("demo-request")["States"]
    assert states["morning"]["Type"] == "Task" and states["morning"]["Next"] == "morning.until"
    # `morning` continues at the goto `again`, which jumps back to `clicked`.
    assert states["morning.until"] == {"Type": "Wait", "TimestampPath": "$.last.until", "Next": "clicked"}
    names = list(states)
    assert names.index("morning.until") == names.index("morning") + 1


def test_goto_compiles_to_no_state() -> None:
    flow = flow_of("demo-request")
    definition = compiled("demo-request")
    gotos = [s.id for s in flow.steps if isinstance(s, Goto)]
    assert gotos == ["again"]
    assert "again" not in definition["States"]
    assert all("again" not in edges(s) for s in definition["States"].values())
    assert dispatch_cases(definition)["again"] == "clicked"


def test_goto_chains_resolve_everywhere() -> None:
    flow = make_flow([goto("start", "hop"), goto("hop", "first"), email("first", "jump"), goto("jump", "done"), end()])
    assert resolve(flow, "start") == "first"
    assert resolve(flow, "first") == "first"
    definition = compile_flow(flow, queue_url=QUEUE_URL)
    assert list(definition["States"])[:3] == [DISPATCH, "first", "done"]
    assert definition["States"][DISPATCH]["Default"] == "first"
    assert dispatch_cases(definition) == {
        "start": "first",
        "hop": "first",
        "first": "first",
        "jump": "done",
        "done": "done",
    }
    assert definition["States"]["first"]["Next"] == "done"


def test_a_goto_loop_is_refused() -> None:
    flow = make_flow([goto("a", "b"), goto("b", "a"), end()])
    with pytest.raises(ValueError, match="loop"):
        resolve(flow, "a")


def test_welcome_branch_chain_is_decided_in_one_task() -> None:
    flow = flow_of("welcome")
    definition = compiled("welcome")
    states = definition["States"]
    assert route_destinations(flow, "opened") == ["guide", "nudge", "done"]
    assert route_cases(definition, "opened") == ["guide", "nudge", "done"]
    assert route_cases(definition, "has_phone") == ["nudge", "done"]
    assert states["opened"]["Type"] == "Task" and states["opened"]["Next"] == "opened.route"
    assert states["has_phone"]["Next"] == "has_phone.route"
    assert states[NO_ROUTE]["Next"] == RECORD_FAILURE
    assert states[NO_ROUTE]["Result"]["Error"] == "Floe.NoRoute"


def test_every_branch_routes_to_its_destinations() -> None:
    for name in EXAMPLE_NAMES:
        flow = flow_of(name)
        definition = compiled(name)
        for step in flow.steps:
            if isinstance(step, Branch):
                assert route_cases(definition, step.id) == route_destinations(flow, step.id)


def test_route_destinations_are_depth_first_yes_before_no_and_unique() -> None:
    flow = make_flow(
        [
            branch("top", "left", "via"),
            branch("left", "a", "b"),
            goto("via", "right"),
            branch("right", "b", "to_left"),
            goto("to_left", "left"),
            email("a", "done"),
            email("b", "done"),
            end(),
        ]
    )
    assert route_destinations(flow, "top") == ["a", "b"]
    assert route_destinations(flow, "right") == ["b", "a"]
    with pytest.raises(ValueError):
        route_destinations(flow, "a")
    definition = compile_flow(flow, queue_url=QUEUE_URL)
    assert route_cases(definition, "top") == ["a", "b"]


def test_no_route_state_only_when_there_are_branches() -> None:
    assert NO_ROUTE not in compiled("demo-request")["States"]
    assert NO_ROUTE in compiled("welcome")["States"]


def test_states_follow_document_order_then_internal_states() -> None:
    assert list(compiled("welcome")["States"]) == [
        DISPATCH,
        "welcome",
        "pause",
        "opened",
        "opened.route",
        "guide",
        "has_phone",
        "has_phone.route",
        "nudge",
        "done",
        EXITED,
        NO_ROUTE,
        RECORD_FAILURE,
        FAILED,
    ]


# --- errors and execution input -------------------------------------------------------------------


def test_an_invalid_document_is_refused_with_its_violations(welcome_doc: dict[str, Any]) -> None:
    welcome_doc["steps"][1]["next"] = "nowhere"
    del welcome_doc["steps"][0]["subject"]
    with pytest.raises(InvalidFlow) as caught:
        compile_document(welcome_doc, queue_url=QUEUE_URL)
    assert isinstance(caught.value, ValueError)
    found = {(v.path, v.code) for v in caught.value.violations}
    assert ("/steps/1/next", "dangling_reference") in found
    assert ("/steps/0/subject", "missing") in found
    assert "nowhere" in str(caught.value)


def test_a_non_object_is_refused() -> None:
    with pytest.raises(InvalidFlow) as caught:
        compile_document([], queue_url=QUEUE_URL)
    assert [v.code for v in caught.value.violations] == ["not_an_object"]


def test_execution_input_carries_ids_and_wait_seconds() -> None:
    welcome = flow_of("welcome")
    ids = {"contact": "c-1", "participant": "p-1"}
    assert execution_input(welcome, start_at="welcome", ids=ids) == {
        "start_at": "welcome",
        "ids": ids,
        "waits": {"pause": 2 * 24 * 3600},
    }
    demo = flow_of("demo-request")
    assert execution_input(demo, start_at="again", ids={})["waits"] == {"clicked": 3 * 24 * 3600}
    # Every SecondsPath / TimeoutSecondsPath finds its value.
    for flow in (welcome, demo):
        waits = execution_input(flow, start_at=flow.start_at, ids={})["waits"]
        assert set(waits) == {s.id for s in flow.steps if isinstance(s, Wait | WaitFor)}


def test_time_scale_compresses_waits_but_never_below_a_second() -> None:
    welcome = flow_of("welcome")
    assert execution_input(welcome, start_at="pause", ids={}, time_scale=1 / 3600)["waits"] == {"pause": 48}
    assert execution_input(welcome, start_at="pause", ids={}, time_scale=1e-9)["waits"] == {"pause": 1}
    with pytest.raises(ValueError):
        execution_input(welcome, start_at="pause", ids={}, time_scale=0)
    with pytest.raises(ValueError):
        execution_input(welcome, start_at="nowhere", ids={})
