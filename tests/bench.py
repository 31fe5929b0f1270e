"""Benchmarks of the whole stack in moto: state transitions, AWS calls, cost, import time.

Run with `make bench` (`python -m tests.bench`); writes `docs/benchmarks.md` and prints a summary.

What it measures, for each example flow and path (welcome: opener, SMS; demo-request: clicked):

1. Step Functions state transitions per participant (the `*StateEntered` events of its execution
   history) against the flow elements the participant visited (steps in its trace, plus the gotos
   between them, which compile to no state) + 2. Target: transitions <= elements + 2.
2. AWS calls our code makes, per participant and per step type, counted with botocore `before-call`
   hooks on the clients the runtime built (Step Functions, SQS, SES v2, SNS and every PynamoDB
   connection). The bench drains the steps queue one message at a time and peeks at the message's
   `step` before handing it to `handlers.steps`, so every call during that drain belongs to that step.
   Calls made by Step Functions itself (its SQS sends) and by the pump (what Lambda's event-source
   mapping does) are not ours; the pump's are listed separately. Target: <= 5 calls per send step.
3. Cost per 1,000 participants at published list prices (see `PRICES`).
4. Import time of `app.py` against `import boto3`, both in fresh interpreters, median of several runs.
   Target: <= 1.5x.

The stack is the one of `tests/functional/conftest.py`'s `stack` fixture, rebuilt here without pytest.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.functional.conftest import STACK_ENV

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
N = int(os.environ.get("BENCH_N", "10"))
IMPORT_RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "7"))

BASE_ENV = {
    **STACK_ENV,
    # The webhook receiver of the demo flow listens on 127.0.0.1: never through a proxy.
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
DROPPED_ENV = ("AWS_PROFILE", "AWS_ENDPOINT_URL")

SEND_TYPES = ("send_email", "send_sms")
SEND_TARGET = 5
IMPORT_TARGET = 1.5
# Real AWS answers over the network; moto answers in-process. Lambda duration is estimated as the
# measured in-process handler time plus this much per AWS call.
ROUND_TRIP_MS = 10.0
SMS_PRICE_ASSUMED = 0.10  # USD per SMS part; illustrative only, the real price depends on the country.

# USD list prices, us-east-1 unless said otherwise, as published on the AWS pricing pages (checked 2026-11).
PRICES: dict[str, tuple[float, str]] = {
    "sfn_transition": (0.025 / 1000, "Step Functions Standard: $0.025 per 1,000 state transitions (also eu-west-1)"),
    "sqs_request": (0.40 / 1e6, "SQS standard queue: $0.40 per million requests (64 KB chunks; free tier ignored)"),
    "ddb_wru": (0.625 / 1e6, "DynamoDB on-demand: $0.625 per million write request units (since 2024-11-01)"),
    "ddb_rru": (0.125 / 1e6, "DynamoDB on-demand: $0.125 per million read request units (since 2024-11-01)"),
    "ses_email": (0.10 / 1000, "SES outbound email: $0.10 per 1,000 emails"),
    "lambda_request": (0.20 / 1e6, "Lambda: $0.20 per million requests"),
    "lambda_gb_s": (0.0000166667, "Lambda x86: $0.0000166667 per GB-second"),
    "apigw_request": (3.50 / 1e6, "API Gateway REST API (Chalice's default): $3.50 per million requests"),
}
PRICES_DATE = "list prices as published on aws.amazon.com/<service>/pricing, read 2026-11; free tiers ignored"


# --- environment and stack -------------------------------------------------------------------------


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in [*values, *DROPPED_ENV]}
    try:
        for name in DROPPED_ENV:
            os.environ.pop(name, None)
        os.environ.update(values)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def running_stack(time_scale: str) -> Iterator[Any]:
    """What the `stack` fixture does, as a context manager; yields a `Stack`."""
    from moto import mock_aws

    from chalicelib import bootstrap
    from chalicelib.config import settings
    from chalicelib.logs import logger
    from tests.functional.conftest import _clear_caches, provision_stack, serving

    logger.setLevel(logging.WARNING)
    with (
        environment({**BASE_ENV, "FLOE_TIME_SCALE": time_scale}),
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
    ):
        sqs, sfn, queues = provision_stack()
        os.environ["FLOE_STEPS_QUEUE_URL"] = queues.steps
        os.environ["FLOE_ENROLL_QUEUE_URL"] = queues.enrollments
        os.environ["FLOE_IMPORTS_QUEUE_URL"] = queues.imports
        _clear_caches()
        from app import app

        # Build settings and the runtime now, outside any request, so the call counters can be attached
        # to its clients before the first call.
        assert settings().table_prefix == "floe-test-"
        bootstrap.runtime()
        try:
            with serving(app, sqs, sfn, queues) as stack:
                yield stack
        finally:
            os.environ.pop("FLOE_STEPS_QUEUE_URL", None)
            os.environ.pop("FLOE_ENROLL_QUEUE_URL", None)
            os.environ.pop("FLOE_IMPORTS_QUEUE_URL", None)
        _clear_caches()


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A local HTTP server answering 200 to every POST; yields its base URL and the bodies received."""
    from tests.http_server import QuietHandler, serving

    received: list[bytes] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            received.append(self.body())
            self.reply(200)

    with serving(Handler) as base:
        yield base, received


# --- counting AWS calls ----------------------------------------------------------------------------------


def item_size(item: dict[str, Any]) -> int:
    """Bytes of a DynamoDB item in wire format, by DynamoDB's item size rules (close enough for billing)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    kind, raw = next(iter(value.items()))
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        digits = len(str(raw).lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "BS"):
        return sum(len(x) if isinstance(x, bytes) else len(str(x).encode()) for x in raw)
    if kind == "NS":
        return sum((len(str(x)) + 1) // 2 + 1 for x in raw)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in raw.items())
    return len(json.dumps(raw))


@dataclass
class Call:
    path: str
    phase: str
    service: str
    operation: str
    rru: float = 0.0
    wru: float = 0.0
    error: str = ""


@dataclass
class Visit:
    """One handler invocation: a queue message, or an HTTP request."""

    path: str
    phase: str
    step: str
    ms: float
    calls: list[Call] = field(default_factory=list)


class Meter:
    """Counts the calls of the clients it is attached to, under the current (path, phase)."""

    def __init__(self) -> None:
        self.path = ""
        self.phase: str | None = None
        self.calls: list[Call] = []
        self.visits: list[Visit] = []
        self._open: Call | None = None
        self._params: dict[str, Any] = {}
        self._attached: set[int] = set()
        self.last_update: dict[str, Any] = {}

    def attach(self, client: Any) -> None:
        if id(client) in self._attached:
            return
        self._attached.add(id(client))
        # The operation's parameters as given: before-call only sees the serialized request.
        client.meta.events.register("before-parameter-build.*.*", self._given, unique_id=f"bench-params-{id(self)}")
        client.meta.events.register("before-call.*.*", self._before, unique_id=f"bench-before-{id(self)}")
        client.meta.events.register("after-call.*.*", self._after, unique_id=f"bench-after-{id(self)}")

    @contextlib.contextmanager
    def phase_of(self, phase: str, step: str = "") -> Iterator[Visit]:
        visit = Visit(self.path, phase, step, 0.0)
        self.phase = phase
        start = len(self.calls)
        began = time.perf_counter()
        try:
            yield visit
        finally:
            visit.ms = (time.perf_counter() - began) * 1000
            visit.calls = self.calls[start:]
            self.visits.append(visit)
            self.phase = None

    def _given(self, params: Any = None, **_: Any) -> None:
        self._params = dict(params or {})

    def _before(self, model: Any = None, **_: Any) -> None:
        if self.phase is None or model is None:
            self._open = None
            return
        call = Call(self.path, self.phase, model.service_model.service_name, model.name)
        self.calls.append(call)
        self._open = call

    def _after(self, model: Any = None, parsed: Any = None, **_: Any) -> None:
        call, self._open = self._open, None
        if call is None or call.service != "dynamodb":
            return
        parsed = parsed or {}
        call.error = str((parsed.get("Error") or {}).get("Code") or "")
        params, op = self._params, call.operation
        consistent = 1.0 if params.get("ConsistentRead") else 0.5
        if op == "GetItem":
            call.rru = max(1, math.ceil(item_size(parsed.get("Item") or {}) / 4096)) * consistent
        elif op in ("Query", "Scan"):
            total = sum(item_size(i) for i in parsed.get("Items") or [])
            call.rru = max(1, math.ceil(total / 4096)) * consistent
        elif op == "PutItem":
            call.wru = max(1, math.ceil(item_size(params.get("Item") or {}) / 1024))
        elif op == "UpdateItem":
            # Billed on the larger of the item before and after; ALL_NEW gives the one after.
            call.wru = max(1, math.ceil(item_size(parsed.get("Attributes") or {}) / 1024))
        elif op == "DeleteItem":
            call.wru = 1
        elif op == "BatchGetItem":
            items = [i for rows in (parsed.get("Responses") or {}).values() for i in rows]
            call.rru = sum(max(1, math.ceil(item_size(i) / 4096)) * consistent for i in items)
        elif op == "BatchWriteItem":
            call.wru = sum(len(rows) for rows in (params.get("RequestItems") or {}).values())
        elif op == "TransactGetItems":
            # Transactional reads cost two read units per 4 KB item.
            items = [r.get("Item") or {} for r in parsed.get("Responses") or []]
            call.rru = sum(2 * max(1, math.ceil(item_size(i) / 4096)) for i in items)
        elif op == "TransactWriteItems":
            # Transactional writes cost two write units per 1 KB item; a put's item is in the request, the
            # size of an updated, deleted or checked item is not returned, so 1 KB each.
            call.wru = sum(
                2 * max(1, math.ceil(item_size((t.get("Put") or {}).get("Item") or {}) / 1024))
                for t in params.get("TransactItems") or []
            )


def attach_runtime(meter: Meter) -> None:
    from chalicelib.bootstrap import runtime
    from chalicelib.storage.models import MODELS, connection

    rt = runtime()
    for client in (rt.machines._sfn, rt.tasks._sfn, rt.email._client, rt.sms._client, rt.enroll_queue._sqs):
        meter.attach(client)
    for model in MODELS:
        meter.attach(model._get_connection().connection.client)
    # Transactions across tables use the storage layer's own connection.
    meter.attach(connection().client)


# --- driving flows -----------------------------------------------------------------------------------------


@dataclass
class PathResult:
    flow: str
    path: str
    doc: dict[str, Any]
    participants: list[str]
    transitions: list[int] = field(default_factory=list)
    elements: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    task_states: list[int] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    emails: int = 0
    sms: int = 0
    webhooks: int = 0
    seconds: float = 0.0


class Driver:
    def __init__(self, stack: Any, meter: Meter, pump_meter: Meter, doc: dict[str, Any]) -> None:
        self.stack = stack
        self.meter = meter
        self.pump_meter = pump_meter
        self.types = {s["id"]: s["type"] for s in doc["steps"]}
        # Called after each step message with (step id, message body): a recipient acting at that moment.
        self.after_step: Callable[[str, dict[str, Any]], None] | None = None

    def http(self, phase: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        with self.meter.phase_of(phase, path.split("/")[1]):
            return self.stack.http(method, path, body, **kw)

    def _steps(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from chalicelib import handlers

        body = json.loads(event["Records"][0]["body"])
        step = body.get("step") or ""
        kind = self.types.get(step, "?") if body.get("kind") == "step" else str(body.get("kind"))
        with self.meter.phase_of(f"step:{kind}", step):
            result = handlers.steps(event, context)
        if self.after_step is not None:
            self.after_step(step, body)
        return result

    def _enroll(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from chalicelib import handlers

        with self.meter.phase_of("enroll", "enrollment"):
            return handlers.enrollments(event, context)

    def pump(self) -> int:
        from chalicelib.local.pumps import drain

        handled = 0
        with self.pump_meter.phase_of("pump"):
            handled += drain(self.stack.sqs, self.stack.enroll_url, self._enroll, batch_size=1)
            handled += drain(self.stack.sqs, self.stack.steps_url, self._steps, batch_size=1)
        return handled

    def run_until(self, done: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pump():
                if done():
                    return
                time.sleep(0.05)
        raise RuntimeError("the participants did not finish in time")


def participant_item(flow_id: str, pid: str) -> Any:
    from chalicelib.bootstrap import runtime

    return runtime().participants.get(flow_id, pid)


def all_finished(flow_id: str, pids: list[str]) -> bool:
    for pid in pids:
        item = participant_item(flow_id, pid)
        if item is None or item.status not in ("completed", "exited", "failed"):
            return False
    return True


def visited_elements(doc: dict[str, Any], trace: list[dict[str, Any]]) -> list[str]:
    """The steps a participant went through, from its trace, with the gotos crossed between them."""
    by_id = {s["id"]: s for s in doc["steps"]}
    seq: list[str] = []
    for entry in trace:
        step = entry.get("step")
        if step and (not seq or seq[-1] != step):
            seq.append(step)
    out: list[str] = []
    for i, step in enumerate(seq):
        out.append(step)
        if i + 1 < len(seq):
            out.extend(_gotos_between(by_id, step, seq[i + 1]))
    return out


def _gotos_between(by_id: dict[str, dict[str, Any]], src: str, dst: str) -> list[str]:
    for key in ("next", "yes", "no", "timeout_next"):
        hop, crossed = by_id[src].get(key), []
        while hop in by_id and by_id[hop]["type"] == "goto" and hop not in crossed:
            crossed.append(hop)
            hop = by_id[hop]["target"]
        if hop == dst and crossed:
            return crossed
    return []


def execution_stats(stack: Any, arn: str) -> tuple[list[str], int]:
    """The names of the states entered, in order, and how many task states were scheduled."""
    entered: list[str] = []
    tasks = 0
    for page in stack.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        for event in page["events"]:
            if event["type"].endswith("StateEntered"):
                entered.append(event.get("stateEnteredEventDetails", {}).get("name", "?"))
            if event["type"] == "TaskScheduled":
                tasks += 1
    return entered, tasks


def wait_executions_done(stack: Any, arns: list[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [stack.sfn.describe_execution(executionArn=a)["status"] for a in arns]
        if all(s != "RUNNING" for s in statuses):
            return
        time.sleep(0.05)


def collect(stack: Any, result: PathResult, flow_id: str) -> None:
    arns = []
    for pid in result.participants:
        item = participant_item(flow_id, pid)
        result.statuses[str(item.status)] += 1
        visited = visited_elements(result.doc, list(item.trace or []))
        result.elements.append(len(visited))
        if not result.visited:
            result.visited = visited
        if item.execution_arn:
            arns.append(str(item.execution_arn))
    wait_executions_done(stack, arns)
    for arn in arns:
        states, tasks = execution_stats(stack, arn)
        result.transitions.append(len(states))
        result.task_states.append(tasks)
        if not result.states:
            result.states = states


def create_flow(driver: Driver, form: str, doc: dict[str, Any]) -> str:
    created = driver.stack.http("POST", "/forms", {"key": form, "name": form, "owner_email": "sales@example.com"})
    assert created.status_code == 201, created.body
    flow = driver.stack.http("POST", "/flows", doc)
    assert flow.status_code == 201, flow.body
    flow_id = str(flow.json_body["id"])
    activated = driver.stack.http("POST", f"/flows/{flow_id}/activate")
    assert activated.status_code == 200, activated.body
    return flow_id


def email_to(stack: Any, address: str, subject: str) -> Any:
    for message in stack.emails():
        if message["To"] == address and str(message["Subject"]).startswith(subject):
            return message
    raise LookupError(f"no email {subject!r} to {address}")


def run_welcome(meter: Meter, pump_meter: Meter) -> list[PathResult]:
    from tests.conftest import example
    from tests.functional.conftest import body_of, links

    doc = example("welcome")
    results = []
    with running_stack("1e-9") as stack:
        attach_runtime(meter)
        pump_meter.attach(stack.sqs)
        driver = Driver(stack, meter, pump_meter, doc)
        flow_id = create_flow(driver, "newsletter", doc)
        for path in ("opener", "sms"):
            meter.path = pump_meter.path = f"welcome/{path}"
            addresses: dict[str, str] = {}
            pids = []
            emails_before, sms_before = len(stack.emails()), len(stack.sms())
            began = time.perf_counter()
            for i in range(N):
                address = f"{path}{i}@example.com"
                fields = {"email": address, "first_name": f"P{i}"}
                if path == "sms":
                    fields["phone"] = f"+316{12000000 + i}"
                answer = driver.http("form_post", "POST", "/forms/newsletter/submissions", fields)
                assert answer.status_code == 202, answer.body
                contact_id = answer.json_body["contact_id"]
                addresses[contact_id] = address
                pids.append(f"{contact_id}.1")

            def open_welcome(step: str, body: dict[str, Any], addresses: dict[str, str] = addresses) -> None:
                # The recipient opens the welcome email during the wait: the pixel is fetched.
                if step != "welcome":
                    return
                message = email_to(stack, addresses[body["ids"]["contact_id"]], "Welcome, P")
                pixel = links(body_of(message), "o")[0]
                got = driver.http("open", "GET", pixel, headers={"Accept": "image/webp,image/*,*/*;q=0.8"})
                assert got.status_code == 200, got.body

            driver.after_step = open_welcome if path == "opener" else None
            driver.run_until(functools.partial(all_finished, flow_id, pids))
            result = PathResult("welcome", path, doc, pids, seconds=time.perf_counter() - began)
            result.emails = len(stack.emails()) - emails_before
            result.sms = len(stack.sms()) - sms_before
            collect(stack, result, flow_id)
            results.append(result)
    return results


def run_demo(meter: Meter, pump_meter: Meter) -> list[PathResult]:
    from tests.conftest import example
    from tests.functional.conftest import body_of, links

    doc = example("demo-request")
    results = []
    # The invite's 3-day timeout becomes ~2 minutes: long enough to click before it, and the
    # never-reached wait_until stays far away.
    with webhook_receiver() as (base, received), running_stack("5e-4") as stack:
        for step in doc["steps"]:
            if step["type"] == "webhook":
                step["url"] = f"{base}/hooks/demo"
        attach_runtime(meter)
        pump_meter.attach(stack.sqs)
        driver = Driver(stack, meter, pump_meter, doc)
        flow_id = create_flow(driver, "demo-request", doc)
        meter.path = pump_meter.path = "demo-request/clicked"
        addresses: dict[str, str] = {}
        pids = []
        began = time.perf_counter()
        for i in range(N):
            address = f"lead{i}@example.com"
            answer = driver.http(
                "form_post",
                "POST",
                "/forms/demo-request/submissions",
                {
                    "email": address,
                    "first_name": f"Lead{i}",
                    "last_name": "Tester",
                    "company": "Acme",
                },
            )
            assert answer.status_code == 202, answer.body
            addresses[answer.json_body["contact_id"]] = address
            pids.append(f"{answer.json_body['contact_id']}.1")

        def click_invite(step: str, body: dict[str, Any]) -> None:
            # The lead clicks the booking link while the flow waits for that click.
            if step != "clicked":
                return
            message = email_to(stack, addresses[body["ids"]["contact_id"]], "Pick a time for your demo")
            got = driver.http("click", "GET", links(body_of(message), "c")[0])
            assert got.status_code == 302, got.body

        driver.after_step = click_invite
        driver.run_until(lambda: all_finished(flow_id, pids), timeout=90)
        result = PathResult("demo-request", "clicked", doc, pids, seconds=time.perf_counter() - began)
        result.emails = len(stack.emails())
        result.sms = len(stack.sms())
        result.webhooks = len(received)
        collect(stack, result, flow_id)
        results.append(result)
    return results


# --- import time -----------------------------------------------------------------------------------------------


def _import_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env.update(BASE_ENV)
    return env


def time_import(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_import_env(), capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip()) * 1000


@dataclass
class ImportNode:
    name: str
    self_us: int
    cumulative_us: int
    depth: int
    children: list[ImportNode] = field(default_factory=list)


def import_tree(module: str) -> list[ImportNode]:
    """`python -X importtime -c 'import <module>'` as a forest (children are listed before parents)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=_import_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    pending: dict[int, list[ImportNode]] = defaultdict(list)
    pattern = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$")
    for line in out.stderr.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        depth = (len(m.group(3)) - 1) // 2
        node = ImportNode(m.group(4), int(m.group(1)), int(m.group(2)), depth)
        node.children = pending.pop(depth + 1, [])
        pending[depth].append(node)
    return pending[0]


@dataclass
class ImportResult:
    app_ms: list[float]
    boto3_ms: list[float]
    app_tree: ImportNode | None
    by_package: list[tuple[str, float]]

    @property
    def ratio(self) -> float:
        return statistics.median(self.app_ms) / statistics.median(self.boto3_ms)


def measure_imports() -> ImportResult:
    time_import("app")  # compile .pyc files first, so every measured run is alike
    time_import("boto3")
    app_ms, boto3_ms = [], []
    for _ in range(IMPORT_RUNS):
        app_ms.append(time_import("app"))
        boto3_ms.append(time_import("boto3"))
    roots = import_tree("app")
    app_tree = next((r for r in roots if r.name == "app"), None)
    packages: Counter[str] = Counter()

    def walk(node: ImportNode) -> None:
        packages[node.name.split(".")[0]] += node.self_us
        for child in node.children:
            walk(child)

    if app_tree is not None:
        walk(app_tree)
    by_package = [(name, us / 1000) for name, us in packages.most_common()]
    return ImportResult(app_ms, boto3_ms, app_tree, by_package)


# --- contacts upserted through the API ---------------------------------------------------------------------

UPSERTS = int(os.environ.get("BENCH_UPSERTS", "200"))
UPSERT_TARGET = 2.0


def upsert_body(i: int, first_name: str) -> dict[str, Any]:
    """A contact as a CRM sync sends it: standard fields, typed custom fields, tags, lists, consent."""
    return {
        "email": f"Upsert{i}@Example.com",
        "first_name": first_name,
        "last_name": "Jansen",
        "phone": f"06 {12000000 + i}",
        "language": "nl",
        "timezone": "Europe/Amsterdam",
        "category": "lead",
        "fields": {"plan": "pro", "seats": str(1 + i % 50)},
        "tags": ["webinar-2026", "vip"],
        "lists": ["newsletter"],
        "consent": {"email": {"status": "granted", "source": "form:newsletter", "at": "2026-02-01T10:00:00Z"}},
    }


class DynamoTime:
    """Wall time spent inside DynamoDB requests (moto answers them in-process): summed, and per
    (kind, operation) while `kind` is set."""

    def __init__(self) -> None:
        self.ms = 0.0
        self.kind: str | None = None
        self.by_op: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._began = 0.0
        self._attached: set[int] = set()

    def attach_runtime(self) -> None:
        from chalicelib.storage.models import MODELS, connection

        for client in [m._get_connection().connection.client for m in MODELS] + [connection().client]:
            if id(client) not in self._attached:
                self._attached.add(id(client))
                client.meta.events.register("before-call.dynamodb.*", self._before, unique_id="bench-ddb-time-b")
                client.meta.events.register("after-call.dynamodb.*", self._after, unique_id="bench-ddb-time-a")
                client.meta.events.register(
                    "before-parameter-build.dynamodb.UpdateItem", self._params, unique_id="bench-ddb-update"
                )

    def _before(self, **_: Any) -> None:
        self._began = time.perf_counter()

    def _params(self, params: Any = None, **_: Any) -> None:
        # The handler's UpdateItem as sent, so the bench can send the very same request bare.
        if self.kind is not None and params is not None:
            self.last_update = copy.deepcopy(params)

    def _after(self, model: Any = None, **_: Any) -> None:
        took = (time.perf_counter() - self._began) * 1000
        self.ms += took
        if self.kind is not None and model is not None:
            self.by_op[(self.kind, model.name)].append(took)


@dataclass
class UpsertRun:
    """Per kind of write ("new", "update"): handler and bare-write times (ms), the handler's time inside
    DynamoDB requests (ms), and the handler's AWS calls."""

    handler_ms: dict[str, list[float]] = field(default_factory=dict)
    dynamo_ms: dict[str, list[float]] = field(default_factory=dict)
    # (kind, operation) → the time of each such request made while handling that kind of write.
    dynamo_by_op: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    bare_ms: dict[str, list[float]] = field(default_factory=dict)
    # kind → the requests an upsert of that kind cannot do without, sent bare (no handler) → times (ms).
    floor_ms: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    calls: dict[str, list[Call]] = field(default_factory=dict)
    seconds: float = 0.0

    def ratio(self, kind: str) -> float:
        return statistics.median(self.handler_ms[kind]) / statistics.median(self.bare_ms[kind])


def least_requests(kind: str, i: int, values: dict[str, Any], update: dict[str, Any]) -> dict[str, Callable[[], None]]:
    """The DynamoDB requests any upsert of this kind must send, as bare requests (no handler around them).

    *new*: keeping addresses unique takes two conditional writes (the address's key, then the contact);
    a transaction would be one request, but moto copies every table a transaction touches. *update*:
    merging the body into the stored contact takes either the handler's own `UpdateItem` (sent again
    here, on the bare item) or a read and a conditional put of the merged item.
    """
    from chalicelib.storage.models import ContactKeyModel, ContactModel, connection

    if kind == "new":

        def claim_and_put() -> None:
            now = dt.datetime.now(dt.UTC)
            ContactKeyModel(key=f"email:least{i}@example.com", contact_id=f"least_{i}", claimed_at=now).save(
                condition=ContactKeyModel.key.does_not_exist()
            )
            ContactModel(**{**values, "contact_id": f"least_{i}"}).save(
                condition=ContactModel.contact_id.does_not_exist()
            )

        return {"conditional PutItem of the key + conditional PutItem of the contact": claim_and_put}

    def same_update() -> None:
        connection().client.update_item(**{**update, "Key": {"contact_id": {"S": f"bare_{i}"}}})

    def read_and_put() -> None:
        stored = ContactModel.get(f"bare_{i}", consistent_read=True)
        stored.first_name = "Least"
        stored.save(condition=ContactModel.updated_at == stored.updated_at)

    return {"the handler's UpdateItem, sent bare": same_update, "GetItem + conditional PutItem": read_and_put}


def run_upserts(meter: Meter) -> UpsertRun:
    """`PUT /contacts` through the Chalice test client against the bare PynamoDB write of the same item.

    Each handler call is followed by the bare `ContactModel(...).save()` of an item with the same
    attributes (under its own id), so both see the same machine load and the same table size. "new"
    creates the contact; "update" sends the same contact again with a changed first name.
    """
    from chalicelib.storage.models import ContactModel

    run = UpsertRun()
    began = time.perf_counter()
    with running_stack("1e-9") as stack:
        attach_runtime(meter)
        meter.path = "contacts"
        dynamo = DynamoTime()
        dynamo.attach_runtime()
        for spec in (
            {"name": "plan", "type": "choice", "options": ["Basic", "Pro"]},
            {"name": "seats", "type": "number"},
        ):
            assert stack.http("POST", "/fields", spec).status_code == 201
        # Warm up (imports, connections, cached field definitions), and take the stored item as the template.
        for i in range(20):
            warm = stack.http("PUT", "/contacts", upsert_body(-1 - i, "Warm"))
            assert warm.status_code == 201, warm.body
        template = ContactModel.get(warm.json_body["contact_id"]).attribute_values
        for kind, first_name, status in (("new", "Anna", 201), ("update", "Anne", 200)):
            handler, bare = run.handler_ms.setdefault(kind, []), run.bare_ms.setdefault(kind, [])
            in_dynamo = run.dynamo_ms.setdefault(kind, [])
            start = len(meter.calls)
            for i in range(UPSERTS):
                body = upsert_body(i, first_name)
                with meter.phase_of(f"upsert:{kind}"):
                    dynamo_before, dynamo.kind = dynamo.ms, kind
                    t0 = time.perf_counter()
                    answer = stack.http("PUT", "/contacts", body)
                    handler.append((time.perf_counter() - t0) * 1000)
                    in_dynamo.append(dynamo.ms - dynamo_before)
                    dynamo.kind = None
                assert answer.status_code == status, answer.body
                values = {
                    **template,
                    "contact_id": f"bare_{i}",
                    "email": answer.json_body["email"],
                    "phone": answer.json_body["phone"],
                    "first_name": first_name,
                }
                t0 = time.perf_counter()
                ContactModel(**values).save()
                bare.append((time.perf_counter() - t0) * 1000)
                floor = run.floor_ms.setdefault(kind, {})
                for name, requests in least_requests(kind, i, values, dynamo.last_update).items():
                    t0 = time.perf_counter()
                    requests()
                    floor.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
            run.calls[kind] = meter.calls[start:]
        assert ContactModel.count() == 20 + 3 * UPSERTS
        run.dynamo_by_op = dict(dynamo.by_op)
    run.seconds = time.perf_counter() - began
    return run


def report_upserts(rep: Report, run: UpsertRun) -> None:
    rep.lines += [
        "## 5. Contacts upserted per second through the API",
        "",
        "`PUT /contacts` through the Chalice test client (API key authorizer, routing, body checks, the",
        f"handler, the response), {UPSERTS} contacts in moto in-process, against the bare PynamoDB write of",
        "the same item (`ContactModel(...).save()`), each handler call followed by one bare write so both",
        "see the same load. The body: email, names, phone (parsed to E.164), language, time zone, category,",
        "two typed custom fields, two tags, a list, email consent. *new*: the address is not known yet;",
        "*update*: the same contacts again with another first name. Ratio = median handler time / median",
        f"bare write time; target <= {UPSERT_TARGET}x. Run time {run.seconds:.0f} s.",
        "",
    ]
    rows = []
    for kind in ("new", "update"):
        h, b, d = run.handler_ms[kind], run.bare_ms[kind], run.dynamo_ms[kind]
        ours = [total - inside for total, inside in zip(h, d, strict=True)]
        ratio = run.ratio(kind)
        ops = sorted((op, times) for (k, op), times in run.dynamo_by_op.items() if k == kind)
        rows.append(
            [
                kind,
                fmt(statistics.median(h), 1),
                fmt(statistics.median(d), 1),
                fmt(statistics.median(ours), 1),
                fmt(statistics.median(b), 1),
                f"**{ratio:.2f}x** {verdict(ratio <= UPSERT_TARGET)}",
                f"{statistics.median(d) / statistics.median(b):.2f}x",
                f"{1000 / statistics.fmean(h):.0f}",
                f"{1000 / statistics.fmean(b):.0f}",
                ", ".join(
                    f"{op} {len(times) / len(h):.2g} ({fmt(statistics.median(times), 1)} ms)" for op, times in ops
                ),
            ]
        )
        rep.summary.append(
            f"contact upsert ({kind}): {fmt(statistics.median(h), 1)} ms per PUT /contacts vs "
            f"{fmt(statistics.median(b), 1)} ms per bare save: ratio {ratio:.2f}x "
            f"(target <= {UPSERT_TARGET}x) {verdict(ratio <= UPSERT_TARGET)}"
        )
    rep.lines += table(
        [
            "write",
            "handler ms",
            "of which in DynamoDB requests",
            "the rest (HTTP, authorizer, checks, view)",
            "bare save ms",
            "ratio",
            "its DynamoDB requests alone / bare save",
            "upserts/s",
            "bare saves/s",
            "DynamoDB requests per upsert (median ms each)",
        ],
        rows,
    )
    floor_rows = []
    for kind in ("new", "update"):
        bare = statistics.median(run.bare_ms[kind])
        for name, times in run.floor_ms.get(kind, {}).items():
            least = statistics.median(times)
            floor_rows.append([kind, name, fmt(least, 1), fmt(bare, 1), f"{least / bare:.2f}x"])
    rep.lines += [
        "",
        "The least DynamoDB work each kind of upsert needs, sent bare in the same run (no HTTP, no",
        "authorizer, no checks), against the same bare save:",
        "",
        *table(["write", "requests", "ms", "bare save ms", "ratio"], floor_rows),
    ]
    rep.lines += [
        "",
        "Times are medians per request. Requests per upsert include the authorizer's key lookup (`GetItem`",
        "of the API key), which Chalice's local gateway runs on every request; API Gateway caches an",
        "authorizer's answer for 60 s, so in AWS most requests skip it. Custom field definitions are",
        "cached per container for 30 s. *update* is one conditional `UpdateItem` on the id derived from",
        "the address (it returns the new item, so no read follows). *new* is that `UpdateItem` (its",
        "condition fails), a conditional `PutItem` claiming the address key, a `GetItem` of the",
        "suppression list and the conditional `PutItem` of the contact: no transaction, so its time does",
        "not grow with the number of contacts stored (moto runs a transaction by copying every table it",
        "touches).",
        "",
        "Where the time goes (profiled with cProfile): almost all of it is inside moto. moto evaluates an",
        "update expression by walking its syntax tree several times, so an `UpdateItem` with this body's",
        "13 actions costs several `PutItem`s. DynamoDB itself has no such cost: an `UpdateItem` and a",
        "`PutItem` of the same item are billed and served alike, and a read-then-put instead of the one",
        "`UpdateItem` would be faster here and slower in AWS (two round trips).",
        "The second table bounds what any handler can reach here: the requests a correct upsert cannot do",
        "without already take about 2x (*new*) and 2.5-3.7x (*update*) of the bare save in moto, before",
        "any HTTP, authorizer or check runs.",
        "Our own code is in the column *the rest*, together with Chalice's local gateway and the test client.",
        "",
    ]


def contacts_only() -> int:
    """`python -m tests.bench contacts`: this section alone, printed (docs/benchmarks.md is left as it is)."""
    rep = Report()
    report_upserts(rep, run_upserts(Meter()))
    print("\n".join(rep.lines))
    return 0


# --- segment counts over 100,000 contacts ------------------------------------------------------------------

SEGMENT_CONTACTS = int(os.environ.get("BENCH_SEGMENT_CONTACTS", "100000"))
# "direct": each item serialized by PynamoDB and put into moto's table store, skipping the wire format
# (about a minute for the whole table); "batch": PynamoDB batch writes through botocore (slower in moto).
SEGMENT_LOAD = os.environ.get("BENCH_SEGMENT_LOAD", "direct")
READ_PAGE_BYTES = 1024 * 1024  # a Query or Scan reads at most 1 MB per request
_ONE_PCT = {"type": "tag", "tag": "one_pct"}
_TEN_PCT = {"type": "tag", "tag": "ten_pct"}
SEGMENT_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("tag, 1% of the contacts", _ONE_PCT),
    ("tag, 10% of the contacts", _TEN_PCT),
    ("category = customer, 25%", {"type": "field", "field": "category", "op": "eq", "value": "Customer"}),
    ("any of the two tags, 11%", {"type": "any", "conditions": [_ONE_PCT, _TEN_PCT]}),
    (
        "all of: the 1% tag, has an owner",
        {"type": "all", "conditions": [_ONE_PCT, {"type": "field", "field": "owner_email", "op": "exists"}]},
    ),
)


def bench_contact(i: int, now: dt.datetime) -> Any:
    """Contact `i` of the segment bench: realistic attributes, a tag on exactly 1% and another on 10%."""
    import hashlib

    from chalicelib.storage.models import ContactModel

    return ContactModel(
        contact_id="ct_" + hashlib.sha1(str(i).encode()).hexdigest()[:20],
        email=f"person{i}@example.com",
        first_name=("Anna", "Bram", "Chloé", "Daan", "Emma")[i % 5],
        last_name=f"Janssens{i % 997}",
        company=f"Company {i % 5000}",
        language=("nl", "nl", "en", "fr", "de", "nl", "en", "fr", "nl", "en")[i % 10],
        category=("lead", "lead", "customer", "loyal customer")[i % 4],
        owner_email=f"sales{i % 20}@example.com" if i % 3 == 0 else None,
        fields={"plan": ("free", "pro")[i % 4 // 2]} if i % 2 else {},
        tags={"one_pct"} if i % 100 == 0 else {"ten_pct"} if i % 10 == 1 else set(),
        lists={"newsletter"} if i % 5 < 3 else set(),
        consent_email={"status": "granted", "source": "form:newsletter", "at": "2026-02-01T10:00:00+00:00"},
        created_at=now,
        updated_at=now,
    )


@dataclass
class SegmentTable:
    contact_sizes: list[int] = field(default_factory=list)
    # Bytes of one index item of each entry (contact ids have one length, so all items of an entry are alike).
    entry_item_bytes: dict[str, int] = field(default_factory=dict)
    index_items: int = 0
    index_bytes: int = 0
    seconds: float = 0.0


def load_segment_table(n: int, how: str) -> SegmentTable:
    """n contacts and the index items the change worker writes for them (`engine.segments.entries_of`)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from chalicelib.engine.segments import entries_of
    from chalicelib.storage.models import ContactModel, SegmentIndexModel

    began = time.perf_counter()
    out = SegmentTable()
    now = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][BASE_ENV["AWS_DEFAULT_REGION"]]
    with contextlib.ExitStack() as batches:
        writers = (
            [batches.enter_context(m.batch_write()) for m in (ContactModel, SegmentIndexModel)]
            if how == "batch"
            else []
        )

        def put(item: Any, which: int) -> int:
            raw = item.serialize()
            if writers:
                writers[which].save(item)
            else:
                backend.put_item(item.Meta.table_name, raw)
            return item_size(raw)

        for i in range(n):
            contact = bench_contact(i, now)
            out.contact_sizes.append(put(contact, 0))
            for entry in entries_of(contact):
                size = put(SegmentIndexModel(entry, contact.contact_id), 1)
                out.entry_item_bytes.setdefault(entry, size)
                out.index_items += 1
                out.index_bytes += size
    out.seconds = time.perf_counter() - began
    return out


class ReadUnits:
    """Read request units of the DynamoDB calls made while `on`, from the bytes each call read.

    moto answers `ReturnConsumedCapacity` with a fixed figure per request, so the units are computed by
    DynamoDB's documented rule: a Query or Scan page costs one unit per 4 KB of the items it read
    (summed, rounded up per page), BatchGetItem one unit per item per 4 KB; eventually consistent reads,
    which all of these are, cost half. A `Select=COUNT` page returns no items: its bytes are its `Count`
    times the size of that entry's index items.
    """

    def __init__(self, entry_item_bytes: dict[str, int]) -> None:
        self.entry_item_bytes = entry_item_bytes
        self.on = False
        self.rru, self.requests, self.items = 0.0, 0, 0
        self._params: dict[str, Any] = {}

    def attach(self, client: Any) -> None:
        # The operation's parameters as given (before-call only sees the serialized request).
        client.meta.events.register(
            "before-parameter-build.dynamodb.*", self._before, unique_id=f"segments-b-{id(self)}"
        )
        client.meta.events.register("after-call.dynamodb.*", self._after, unique_id=f"segments-a-{id(self)}")

    def _before(self, params: Any = None, **_: Any) -> None:
        self._params = dict(params or {})

    def _after(self, model: Any = None, parsed: Any = None, **_: Any) -> None:
        if not self.on or model is None:
            return
        parsed, params = parsed or {}, self._params
        half = 1.0 if params.get("ConsistentRead") else 0.5
        self.requests += 1
        if model.name in ("Query", "Scan"):
            if params.get("Select") == "COUNT":
                values = (params.get("ExpressionAttributeValues") or {}).values()
                entry = next(v["S"] for v in values if v.get("S") in self.entry_item_bytes)
                count = int(parsed.get("Count", 0))
                read = count * self.entry_item_bytes[entry]
            else:
                rows = parsed.get("Items") or []
                count, read = len(rows), sum(item_size(r) for r in rows)
            self.items += count
            self.rru += max(1, math.ceil(read / 4096)) * half
        elif model.name == "BatchGetItem":
            rows = [r for got in (parsed.get("Responses") or {}).values() for r in got]
            self.items += len(rows)
            self.rru += sum(max(1, math.ceil(item_size(r) / 4096)) * half for r in rows)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        self.rru, self.requests, self.items = 0.0, 0, 0
        self.on = True
        try:
            yield
        finally:
            self.on = False


@dataclass
class SegmentCase:
    name: str
    members: int
    served_by: str
    entries: int
    contacts_read: int
    items_read: int
    requests: int
    rru: float
    ms: float


@dataclass
class SegmentRun:
    table: SegmentTable
    scan_rru: float
    cases: list[SegmentCase]
    page: SegmentCase
    seconds: float


def scan_read_units(sizes: list[int]) -> float:
    """What one eventually consistent Scan of items of these sizes consumes: 1 MB pages of 4 KB units, half."""
    rru, page = 0.0, 0
    for size in sizes:
        if page + size > READ_PAGE_BYTES:
            rru += math.ceil(page / 4096) * 0.5
            page = 0
        page += size
    return rru + math.ceil(page / 4096) * 0.5


@contextlib.contextmanager
def sorted_once() -> Iterator[None]:
    """moto sorts every item of a table on each Query or Scan (DynamoDB reads just the partition), which
    makes one query of a 450,000-item table take a minute in moto. The measurements only read, so each
    table's sorted items are kept while they run; what a request reads and returns is unchanged."""
    from moto.dynamodb.models.table import Table

    original = Table.all_items
    kept: dict[int, list[Any]] = {}

    def all_items(table: Any) -> list[Any]:
        if id(table) not in kept:
            kept[id(table)] = original(table)
        return list(kept[id(table)])

    setattr(Table, "all_items", all_items)  # noqa: B010
    try:
        yield
    finally:
        setattr(Table, "all_items", original)  # noqa: B010


def run_segments() -> SegmentRun:
    """Segment counts over SEGMENT_CONTACTS contacts through `engine.segments`, metered in read units."""
    from moto import mock_aws
    from pydantic import TypeAdapter

    from chalicelib.bootstrap import build_runtime
    from chalicelib.config import from_env
    from chalicelib.contacts.conditions import Condition
    from chalicelib.contacts.segments import plan
    from chalicelib.engine.segments import count_matching, select
    from chalicelib.storage import models
    from chalicelib.storage.models import ContactModel, SegmentIndexModel

    began = time.perf_counter()
    conditions: TypeAdapter[Condition] = TypeAdapter(Condition)
    cases = []
    with environment(BASE_ENV), mock_aws():
        rt = build_runtime(from_env(os.environ))
        models.create_tables()
        loaded = load_segment_table(SEGMENT_CONTACTS, SEGMENT_LOAD)
        units = ReadUnits(loaded.entry_item_bytes)
        for model in (ContactModel, SegmentIndexModel):
            units.attach(model._get_connection().connection.client)
        with sorted_once():
            # The first query pays moto's one sort of the table; keep it out of the timings.
            rt.segment_index.count("tag:warm-up")
            for name, doc in SEGMENT_CASES:
                cond = conditions.validate_python(doc)
                start = time.perf_counter()
                with units.measuring():
                    counted = count_matching(rt, cond)
                ms = (time.perf_counter() - start) * 1000
                entries = len(counted.plan.entries or ())
                read = (counted.contacts_evaluated, units.items, units.requests, units.rru)
                cases.append(SegmentCase(name, counted.count, counted.plan.served_by, entries, *read, ms))
            cond = conditions.validate_python(_TEN_PCT)
            start = time.perf_counter()
            with units.measuring():
                got = select(rt, cond, cursor=None, limit=50)
            ms = (time.perf_counter() - start) * 1000
        read = (len(got.items), units.items, units.requests, units.rru)
        page = SegmentCase(
            "members: first page of 50 of the 10% tag", len(got.items), plan(cond).served_by, 1, *read, ms
        )
    scan = scan_read_units(loaded.contact_sizes)
    return SegmentRun(loaded, scan, cases, page, time.perf_counter() - began)


def report_segments(rep: Report, run: SegmentRun) -> None:
    t = run.table
    n = len(t.contact_sizes)
    loaded = (
        "with PynamoDB batch writes."
        if SEGMENT_LOAD == "batch"
        else "straight into moto's tables: each item\nserialized by PynamoDB and put into moto's store without the"
        " wire format (PynamoDB batch writes\nthrough moto take several times longer; `BENCH_SEGMENT_LOAD=batch`"
        " uses them)."
    )
    rep.lines += [
        f"## Segment counts over {n:,} contacts, in DynamoDB read units",
        "",
        f"{n:,} contacts ({mean(t.contact_sizes):.0f} bytes on average) and their {t.index_items:,} segment index",
        f"items ({t.index_bytes / max(1, t.index_items):.0f} bytes each on average) are loaded in {t.seconds:.0f} s"
        f" {loaded}",
        "The index items are exactly those the change worker writes for each contact",
        "(`engine.segments.entries_of`). Each segment is then counted by `engine.segments.count_matching`, the",
        "use case behind `GET /segments/{id}/count`.",
        "",
        "Read units are computed from the bytes each request read, by DynamoDB's documented rule, because moto",
        "reports a fixed ConsumedCapacity per request: a Query or Scan page costs one unit per 4 KB of items",
        "read (summed, rounded up per page, 1 MB pages); BatchGetItem one unit per item per 4 KB; every read",
        "here is eventually consistent, so half that. A `Select=COUNT` page returns no items: its bytes are its",
        "Count times the size of the entry's index items. The full scan (what a condition no index serves",
        "costs) is computed by the same rule from the table's item sizes.",
        "",
    ]
    rows = []
    exact_ok = []
    for c in [*run.cases, run.page]:
        counted = c is not run.page
        share = run.scan_rru * c.members / n
        if counted and c.contacts_read == 0:
            exact_ok.append(c.rru <= share)
        rows.append(
            [
                c.name,
                f"{c.members:,}",
                c.served_by,
                str(c.entries),
                f"{c.contacts_read:,}",
                f"{c.items_read:,}",
                str(c.requests),
                f"**{fmt(c.rru)}**",
                fmt(c.rru / max(1, c.members) * 1000),
                fmt(share) if counted else "-",
                f"{run.scan_rru / c.rru:.0f}x" if c.rru else "-",
                fmt(c.ms, 0),
            ]
        )
    rows.append(
        ["full scan of the table (computed)", "-", "scan", "-", f"{n:,}", f"{n:,}", str(math.ceil(
            sum(t.contact_sizes) / READ_PAGE_BYTES)), f"**{fmt(run.scan_rru)}**", "-", "-", "1x", "-"]
    )  # fmt: skip
    rep.lines += table(
        [
            "segment",
            "members",
            "served by",
            "index entries",
            "contacts read",
            "items read",
            "requests",
            "read units",
            "per 1,000 members",
            "scan prorated to the members",
            "cheaper than a scan",
            "ms (in-process moto)",
        ],
        rows,
    )
    one, ten = run.cases[0], run.cases[1]
    growth = ten.rru / one.rru if one.rru else 0.0
    proportional = all(exact_ok) and 5 <= growth <= 20
    rep.lines += [
        "",
        f"From the 1% to the 10% segment the members grow 10x and the read units {growth:.1f}x, on the same table.",
        "Target: cost proportional to the segment, not the table. Result: every count the index answers alone",
        "reads less than a full scan prorated to its members, and 10x the members costs 5-20x the units:",
        f"**{verdict(proportional)}**. A count whose candidates must be checked (the `all` row) also reads each",
        "candidate contact once with BatchGetItem (half a unit per contact up to 4 KB): proportional to the",
        "candidates, and cheaper than a scan while they are fewer than about one contact in ten. A members page",
        "reads its page of index items and the contacts on it.",
        "",
    ]
    rep.summary.append(
        f"segment count over {n:,} contacts: 1% tag {fmt(one.rru)} RRU, 10% tag {fmt(ten.rru)} RRU, full scan"
        f" {fmt(run.scan_rru)} RRU; proportional to the segment: {verdict(proportional)}"
    )


def segments_only() -> int:
    """`python -m tests.bench segments`: this section alone, printed (docs/benchmarks.md is left as it is)."""
    rep = Report()
    run = run_segments()
    report_segments(rep, run)
    print("\n".join(rep.lines))
    print("\n".join(f"- {s}" for s in rep.summary))
    print(f"({run.seconds:.0f} s)")
    return 0


# --- reporting -----------------------------------------------------------------------------------------------


def mean(values: list[float] | list[int]) -> float:
    return statistics.fmean(values) if values else 0.0


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def op_breakdown(calls: list[Call], per: int) -> str:
    counts = Counter(f"{c.service}.{c.operation}" for c in calls)
    return ", ".join(f"{op} {n / per:.2g}" for op, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)


def lambda_memory_mb() -> dict[str, int]:
    """Memory sizes of the functions, from the `dev` stage of .chalice/config.json (512 MB if unset)."""
    sizes = {"api_handler": 512, "step_worker": 512, "enrollment_worker": 512}
    with contextlib.suppress(OSError, ValueError, KeyError):
        stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
        default = int(stage.get("lambda_memory_size", 512))
        for name in sizes:
            sizes[name] = int(stage.get("lambda_functions", {}).get(name, {}).get("lambda_memory_size", default))
    return sizes


def report_transitions(rep: Report, results: list[PathResult]) -> None:
    rep.lines += [
        "## 1. Step Functions state transitions per participant",
        "",
        "Transitions are the `*StateEntered` events of each participant's execution history. Elements are",
        "the flow steps the participant visited (from its trace; gotos crossed count too, though they",
        "compile to no state). Target: transitions <= elements + 2 (the dispatch `Choice` and one",
        "`Choice` after a branch task). Ratio = transitions / (elements + 2), measured in the same run.",
        "",
    ]
    rows = []
    for r in results:
        target = [e + 2 for e in r.elements]
        ok = bool(r.transitions) and all(t <= e for t, e in zip(r.transitions, target, strict=False))
        ratio = mean(r.transitions) / mean(target) if target else 0.0
        rows.append(
            [
                f"{r.flow} / {r.path}",
                str(len(r.participants)),
                ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items())),
                fmt(mean(r.elements)),
                fmt(mean(target)),
                f"{fmt(mean(r.transitions))} ({min(r.transitions, default=0)}-{max(r.transitions, default=0)})",
                fmt(ratio, 2),
                verdict(ok),
            ]
        )
        rep.summary.append(
            f"transitions {r.flow}/{r.path}: {fmt(mean(r.transitions))} vs elements+2 {fmt(mean(target))} "
            f"(ratio {fmt(ratio, 2)}) {verdict(ok)}"
        )
    rep.lines += table(
        [
            "flow / path",
            "participants",
            "final status",
            "elements visited",
            "target (elements + 2)",
            "transitions mean (min-max)",
            "ratio",
            "result",
        ],
        rows,
    )
    rep.lines += ["", "One participant of each path, step by step:", ""]
    for r in results:
        rep.lines.append(f"- {r.flow} / {r.path}: elements `{' → '.join(r.visited)}`; states `{' → '.join(r.states)}`")
    rep.lines.append("")


def report_calls(rep: Report, results: list[PathResult], meter: Meter, pump_meter: Meter) -> None:
    rep.lines += [
        "## 2. AWS calls",
        "",
        "Counted with botocore `before-call` hooks on the clients `bootstrap.runtime()` built (Step Functions,",
        "SQS, SES v2, SNS) and on every PynamoDB model's connection client. Each steps-queue message is",
        "drained on its own; all calls while `handlers.steps` handles it belong to its step type. Not",
        "counted: Step Functions' own SQS sends of the task messages, and the pump's receive/delete (what",
        "Lambda's event-source mapping does; listed below). The bench runs the HTTP handler and both",
        "workers on one runtime in one process, so the per-container cache of published flow versions",
        "(`repos.Flows.version`) is shared: only the first enrollment reads the version (hence enroll",
        "max > mean). In AWS each function has its own containers: the first step message of every new",
        "step-worker container reads the version once more (+1 GetItem, amortized over the container).",
        "",
        "### Per step type (per handled message)",
        "",
    ]
    by_phase: dict[str, list[Visit]] = defaultdict(list)
    for v in meter.visits:
        by_phase[v.phase].append(v)
    rows = []
    order = sorted(by_phase, key=lambda p: (not p.startswith("step:"), p))
    for phase in order:
        visits = by_phase[phase]
        counts = [len(v.calls) for v in visits]
        calls = [c for v in visits for c in v.calls]
        kind = phase.removeprefix("step:")
        target, result = "-", "-"
        if kind in SEND_TYPES:
            target = f"<= {SEND_TARGET}"
            result = verdict(mean(counts) <= SEND_TARGET)
            rep.summary.append(
                f"AWS calls per {kind}: mean {fmt(mean(counts))} (max {max(counts)}), target <= {SEND_TARGET}: {result}"
            )
        label = phase if phase.startswith("step:") else f"{phase} (HTTP/queue handler)"
        if phase.startswith("step:"):
            label += " (" + ", ".join(sorted({v.step for v in visits})) + ")"
        rows.append(
            [
                label,
                str(len(visits)),
                fmt(mean(counts)),
                str(max(counts)),
                op_breakdown(calls, len(visits)),
                target,
                result,
                fmt(statistics.median([v.ms for v in visits])),
            ]
        )
    rep.lines += table(
        [
            "phase",
            "messages / requests",
            "calls mean",
            "calls max",
            "calls per message by operation",
            "target",
            "result",
            "handler ms (median, in-process)",
        ],
        rows,
    )
    rep.lines += ["", "### Per participant", ""]
    rows = []
    for r in results:
        key = f"{r.flow}/{r.path}"
        calls = [c for c in meter.calls if c.path == key]
        n = len(r.participants)
        services = Counter(c.service for c in calls)
        per_phase = Counter(c.phase for c in calls)
        rows.append(
            [
                key,
                fmt(len(calls) / n),
                ", ".join(f"{s} {fmt(k / n)}" for s, k in services.most_common()),
                ", ".join(f"{p} {fmt(k / n)}" for p, k in sorted(per_phase.items())),
            ]
        )
        rep.summary.append(f"AWS calls per participant {key}: {fmt(len(calls) / n)}")
    rep.lines += table(["flow / path", "calls per participant", "by service", "by phase"], rows)
    rep.lines += ["", "The pump's own calls (test harness; Lambda's event-source mapping in AWS), per participant:", ""]
    rows = []
    for r in results:
        key = f"{r.flow}/{r.path}"
        calls = [c for c in pump_meter.calls if c.path == key]
        rows.append([key, op_breakdown(calls, len(r.participants))])
    rep.lines += table(["flow / path", "calls per participant (includes empty polls)"], rows)
    rep.lines.append("")


@dataclass
class Units:
    transitions: float = 0.0
    sqs: float = 0.0
    rru: float = 0.0
    wru: float = 0.0
    emails: float = 0.0
    sms: float = 0.0
    lambda_requests: float = 0.0
    gb_s: float = 0.0
    api_requests: float = 0.0

    def costs(self) -> dict[str, float]:
        p = {k: v[0] for k, v in PRICES.items()}
        return {
            "Step Functions": self.transitions * p["sfn_transition"],
            "SQS": self.sqs * p["sqs_request"],
            "DynamoDB": self.rru * p["ddb_rru"] + self.wru * p["ddb_wru"],
            "SES": self.emails * p["ses_email"],
            "Lambda": self.lambda_requests * p["lambda_request"] + self.gb_s * p["lambda_gb_s"],
            "API Gateway": self.api_requests * p["apigw_request"],
        }


def units_per_participant(r: PathResult, meter: Meter) -> Units:
    key, n = f"{r.flow}/{r.path}", len(r.participants)
    memory = lambda_memory_mb()
    u = Units()
    calls = [c for c in meter.calls if c.path == key]
    visits = [v for v in meter.visits if v.path == key]
    u.transitions = sum(r.transitions) / n
    messages = sum(1 for v in visits if v.phase.startswith("step:") or v.phase == "enroll")
    our_sqs = sum(1 for c in calls if c.service == "sqs")
    # Ours, plus Step Functions' SendMessage per task state, plus one ReceiveMessage and one
    # DeleteMessageBatch per message (Lambda's event-source mapping at batch size 1; empty polls excluded).
    u.sqs = (our_sqs + sum(r.task_states) + 2 * messages) / n
    u.rru = sum(c.rru for c in calls) / n
    u.wru = sum(c.wru for c in calls) / n
    u.emails = sum(1 for c in calls if c.service == "sesv2" and c.operation == "SendEmail") / n
    u.sms = sum(1 for c in calls if c.service == "sns" and c.operation == "Publish") / n
    u.lambda_requests = len(visits) / n
    u.api_requests = sum(1 for v in visits if not v.phase.startswith("step:") and v.phase != "enroll") / n
    gb_s = 0.0
    for v in visits:
        function = (
            "step_worker"
            if v.phase.startswith("step:")
            else "enrollment_worker"
            if v.phase == "enroll"
            else "api_handler"
        )
        ms = math.ceil(v.ms + ROUND_TRIP_MS * len(v.calls))
        gb_s += ms / 1000 * memory[function] / 1024
    u.gb_s = gb_s / n
    return u


def report_cost(rep: Report, results: list[PathResult], meter: Meter) -> None:
    memory = lambda_memory_mb()
    rep.lines += [
        "## 3. Cost per 1,000 participants",
        "",
        f"Prices ({PRICES_DATE}):",
        "",
        *[f"- {text}" for _, text in PRICES.values()],
        f"- SMS (SNS / End User Messaging): priced per message part and destination country; NOT in the totals."
        f" The SMS column shows the count; at an illustrative ${SMS_PRICE_ASSUMED:.2f} per SMS (roughly a"
        " European destination such as NL; check the current country price) add count x price.",
        "",
        "Units, as measured: state transitions from the execution histories; DynamoDB read/write request",
        "units computed per call from the item sizes (reads: 4 KB units, strongly consistent = 1, eventually",
        "consistent = 0.5; writes: 1 KB units on the item written, UpdateItem on the item after the update);",
        "SQS requests = our SendMessage calls + Step Functions' SendMessage per task state + one",
        "ReceiveMessage and one DeleteMessageBatch per message (Lambda polling at batch size 1, empty polls",
        "excluded); one Lambda invocation per message and per HTTP request, billed duration = measured",
        f"in-process handler time + {ROUND_TRIP_MS:.0f} ms per AWS call (moto answers in-process), memory from",
        f".chalice/config.json ({', '.join(f'{k} {v} MB' for k, v in memory.items())}); one API Gateway request",
        "per HTTP request (form post, open pixel, click). Step Functions API calls (StartExecution,",
        "SendTaskSuccess) are not billed for Standard workflows.",
        "",
    ]
    rows = []
    cost_rows = []
    for r in results:
        u = units_per_participant(r, meter)
        k = 1000
        rows.append(
            [
                f"{r.flow} / {r.path}",
                fmt(u.transitions * k, 0),
                fmt(u.sqs * k, 0),
                fmt(u.rru * k, 0),
                fmt(u.wru * k, 0),
                fmt(u.emails * k, 0),
                fmt(u.lambda_requests * k, 0),
                fmt(u.gb_s * k, 2),
                fmt(u.api_requests * k, 0),
                fmt(u.sms * k, 0),
            ]
        )
        costs = {name: c * k for name, c in u.costs().items()}
        total = sum(costs.values())
        sms_cost = u.sms * k * SMS_PRICE_ASSUMED
        cost_rows.append(
            [f"{r.flow} / {r.path}", *[f"${c:.4f}" for c in costs.values()], f"**${total:.4f}**", f"${sms_cost:.2f}"]
        )
        biggest = max(costs.items(), key=lambda kv: kv[1])
        rep.summary.append(
            f"cost per 1,000 {r.flow}/{r.path}: ${total:.4f} without SMS (largest: {biggest[0]} ${biggest[1]:.4f})"
            + (f"; + {u.sms * k:.0f} SMS (~${sms_cost:.2f} at ${SMS_PRICE_ASSUMED}/SMS)" if u.sms else "")
        )
    rep.lines += ["Units per 1,000 participants:", ""]
    rep.lines += table(
        [
            "flow / path",
            "state transitions",
            "SQS requests",
            "DynamoDB RRU",
            "DynamoDB WRU",
            "SES emails",
            "Lambda invocations",
            "Lambda GB-s",
            "API Gateway requests",
            "SMS (not in totals)",
        ],
        rows,
    )
    rep.lines += ["", "USD per 1,000 participants:", ""]
    rep.lines += table(
        [
            "flow / path",
            *Units().costs().keys(),
            "total (without SMS)",
            f"SMS at ${SMS_PRICE_ASSUMED}/SMS (illustrative)",
        ],
        cost_rows,
    )
    rep.lines.append("")


def report_imports(rep: Report, imp: ImportResult) -> None:
    app_med, boto_med = statistics.median(imp.app_ms), statistics.median(imp.boto3_ms)
    ok = imp.ratio <= IMPORT_TARGET
    rep.lines += [
        "## 4. Import time of app.py",
        "",
        f"Each import in a fresh `{Path(sys.executable).name} -c` process (timed with `time.perf_counter()` around",
        f"the import statement), after one warm-up run each to compile bytecode; {IMPORT_RUNS} runs each,",
        "interleaved, median. The environment is the bench's (fake credentials, no endpoint): importing",
        "the app makes no AWS call.",
        "",
    ]
    rep.lines += table(
        ["import", "median ms", "runs (ms)"],
        [
            ["`import app`", fmt(app_med), ", ".join(fmt(x) for x in imp.app_ms)],
            ["`import boto3` (baseline)", fmt(boto_med), ", ".join(fmt(x) for x in imp.boto3_ms)],
        ],
    )
    rep.lines += [
        "",
        f"Ratio app / boto3: **{imp.ratio:.2f}x**; target <= {IMPORT_TARGET}x: **{verdict(ok)}**.",
        "",
    ]
    rep.summary.append(
        f"import app {fmt(app_med)} ms vs import boto3 {fmt(boto_med)} ms: ratio {imp.ratio:.2f}x "
        f"(target <= {IMPORT_TARGET}x) {verdict(ok)}"
    )
    if imp.app_tree is None:
        return
    rep.lines += [
        "Where the time goes (`python -X importtime -c 'import app'`, one run; importtime itself adds",
        "overhead, so compare the parts with each other, not with the medians above).",
        "",
        f"Direct imports of `app` (cumulative ms; `app` itself {imp.app_tree.cumulative_us / 1000:.1f} ms):",
        "",
    ]
    rows = []
    for child in sorted(imp.app_tree.children, key=lambda c: -c.cumulative_us):
        heavy = sorted(child.children, key=lambda c: -c.cumulative_us)[:4]
        rows.append(
            [
                f"`{child.name}`",
                fmt(child.cumulative_us / 1000),
                ", ".join(f"`{h.name}` {h.cumulative_us / 1000:.1f}" for h in heavy if h.cumulative_us >= 1000),
            ]
        )
    rep.lines += table(["module", "cumulative ms", "its heaviest imports (ms)"], rows)
    rep.lines += ["", "Self time summed per top-level package (everything `import app` loads):", ""]
    total = sum(ms for _, ms in imp.by_package)
    rows = [[f"`{name}`", fmt(ms), f"{ms / total:.0%}"] for name, ms in imp.by_package[:15]]
    rep.lines += table(["package", "self ms", "share"], rows)
    rep.lines.append("")


def machine_note() -> list[str]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return [
        f"- Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()},"
        f" {os.cpu_count()} CPUs",
        f"- moto {version('moto')}, boto3 {version('boto3')}, botocore {version('botocore')},"
        f" pynamodb {version('pynamodb')}, chalice {version('chalice')}",
    ]


def write_report(
    results: list[PathResult],
    meter: Meter,
    pump_meter: Meter,
    imp: ImportResult,
    seconds: float,
    upserts: UpsertRun | None = None,
    segments: SegmentRun | None = None,
) -> Report:
    rep = Report()
    rep.lines += [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m tests.bench`) on {dt.date.today().isoformat()}; do not edit by hand.",
        "",
        *machine_note(),
        f"- {N} participants per path; whole stack in-process in moto (Step Functions execution on), the",
        "  real compiled state machines and the real workers; waits compressed with FLOE_TIME_SCALE",
        "  (welcome 1e-9, demo-request 5e-4 so the click comes well within the wait_for timeout);",
        "  the demo flow's webhook goes to a local HTTP server on 127.0.0.1.",
        f"- Bench run time: {seconds:.0f} s ("
        + ", ".join(f"{r.flow}/{r.path} {r.seconds:.1f} s" for r in results)
        + ")",
        "",
        "Paths: welcome/opener opens the welcome email during the wait and gets the guide; welcome/sms",
        "does not open and has a phone number, so gets the SMS nudge; demo-request/clicked clicks the",
        "invite's booking link while the flow waits for that click, and gets the thank-you email.",
        "",
    ]
    report_transitions(rep, results)
    report_calls(rep, results, meter, pump_meter)
    report_cost(rep, results, meter)
    report_imports(rep, imp)
    if upserts is not None:
        report_upserts(rep, upserts)
    if segments is not None:
        report_segments(rep, segments)
    rep.lines += ["## Summary", "", *[f"- {s}" for s in rep.summary], ""]
    DOC.write_text("\n".join(rep.lines))
    return rep


def main() -> int:
    if sys.argv[1:] == ["contacts"]:
        return contacts_only()
    if sys.argv[1:] == ["segments"]:
        return segments_only()
    began = time.perf_counter()
    meter, pump_meter = Meter(), Meter()
    results = run_welcome(meter, pump_meter) + run_demo(meter, pump_meter)
    for r in results:
        if r.statuses != Counter({"completed": len(r.participants)}):
            print(f"warning: {r.flow}/{r.path} ended with {dict(r.statuses)}", file=sys.stderr)
    imp = measure_imports()
    upserts = run_upserts(Meter())
    segments = run_segments()
    rep = write_report(results, meter, pump_meter, imp, time.perf_counter() - began, upserts, segments)
    print(f"Benchmarks ({N} participants per path), written to {DOC.relative_to(ROOT)}:")
    for line in rep.summary:
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
