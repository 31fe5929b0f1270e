"""Validation of a flow document: every violation at once, each with a JSON Pointer path and a code.

Two passes that both always run: the schema pass (pydantic) and the graph pass over the raw step
dicts, so a step with a missing subject and a dangling `next` elsewhere are reported together.
Semantic checks that need typed steps run when the schema pass succeeded. Warnings do not block
saving or activating a flow; errors do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from chalicelib.contacts.conditions import EngagementCondition, requires_field, walk
from chalicelib.flows.model import Branch, Flow, Notify, SendEmail, SendSms, Wait, WaitFor

# Attributes of a step that point at another step: the graph pass reads them from raw JSON.
EDGE_ATTRS = ("next", "yes", "no", "timeout_next", "target")
WAITING_TYPES = frozenset({"wait", "wait_until", "wait_for"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A Standard execution lasts at most a year, so no single wait may be longer.
MAX_WAIT_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True)
class Violation:
    path: str
    code: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message, "severity": self.severity}


@dataclass(frozen=True)
class Result:
    flow: Flow | None
    violations: tuple[Violation, ...]

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.flow is not None and not self.errors


def validate(doc: Any) -> Result:
    if not isinstance(doc, dict):
        return Result(None, (Violation("", "not_an_object", "a flow document is a JSON object"),))
    flow: Flow | None = None
    violations: list[Violation] = []
    try:
        flow = Flow.model_validate(doc)
    except ValidationError as exc:
        violations.extend(_schema_violations(doc, exc))
    violations.extend(_graph_violations(doc))
    if flow is not None:
        violations.extend(_semantic_violations(flow))
    # The same fault can be seen by both passes (e.g. an empty step list); report it once.
    unique = list(dict.fromkeys(violations))
    return Result(flow if not any(v.severity == "error" for v in unique) else None, tuple(unique))


# --- schema pass ----------------------------------------------------------------------------------


def _schema_violations(doc: dict[str, Any], exc: ValidationError) -> Iterator[Violation]:
    for err in exc.errors(include_url=False):
        path = _pointer(doc, err["loc"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The fault is the `type` member, so point at it.
            path += "/type"
        yield Violation(path, err["type"], err["msg"])


def _pointer(doc: Any, loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic location into a JSON Pointer into the submitted document.

    Pydantic puts the tag of a discriminated union into the location right after the node that
    holds it (`steps/2/send_email/subject`); the submitted document has no such level.
    """
    parts: list[str] = []
    node: Any = doc
    just_entered = True
    for item in loc:
        if just_entered and isinstance(node, dict) and isinstance(item, str) and node.get("type") == item:
            just_entered = False
            continue
        if isinstance(item, str) and item.startswith(("function-", "nullable[")):
            continue
        parts.append(str(item))
        if isinstance(node, dict):
            node = node.get(item)
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            node = node[item]
        else:
            node = None
        just_entered = True
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts) if parts else ""


# --- graph pass -----------------------------------------------------------------------------------


def _graph_violations(doc: dict[str, Any]) -> Iterator[Violation]:
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list):
        return
    index: dict[str, int] = {}
    types: dict[str, str] = {}
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        sid = raw["id"]
        if sid in index:
            yield Violation(f"/steps/{i}/id", "duplicate_id", f"step id {sid!r} is used twice")
            continue
        index[sid] = i
        types[sid] = str(raw.get("type"))

    edges: dict[str, list[str]] = {sid: [] for sid in index}
    for sid, i in index.items():
        raw = raw_steps[i]
        for attr in EDGE_ATTRS:
            target = raw.get(attr)
            if not isinstance(target, str):
                continue
            if target not in index:
                yield Violation(
                    f"/steps/{i}/{attr}", "dangling_reference", f"{attr} points at {target!r}, which is no step"
                )
            else:
                edges[sid].append(target)

    start = doc.get("start_at")
    if isinstance(start, str) and index and start not in index:
        yield Violation("/start_at", "dangling_reference", f"start_at points at {start!r}, which is no step")
    if not isinstance(start, str) or start not in index:
        return

    reachable = _reach([start], edges)
    for sid, i in index.items():
        if sid not in reachable:
            yield Violation(f"/steps/{i}", "unreachable", f"step {sid!r} cannot be reached from start_at")

    ends = [sid for sid, t in types.items() if t == "end"]
    if not ends:
        yield Violation("/steps", "no_end", "the flow has no `end` step")
    else:
        reverse: dict[str, list[str]] = {sid: [] for sid in index}
        for src, targets in edges.items():
            for dst in targets:
                reverse[dst].append(src)
        can_finish = _reach(ends, reverse)
        for sid in sorted(reachable - can_finish, key=index.__getitem__):
            yield Violation(f"/steps/{index[sid]}", "no_end_reachable", f"no `end` can be reached from step {sid!r}")

    # A loop must pass a waiting step, or a participant would spin through it without pause.
    instant = {
        sid: [t for t in ts if types[t] not in WAITING_TYPES]
        for sid, ts in edges.items()
        if types[sid] not in WAITING_TYPES
    }
    for component in _cycles(instant):
        first = min(component, key=index.__getitem__)
        yield Violation(
            f"/steps/{index[first]}",
            "cycle_without_wait",
            "these steps form a loop with no wait in it: " + ", ".join(sorted(component, key=index.__getitem__)),
        )


def _reach(starts: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.add(sid)
        todo.extend(edges.get(sid, []))
    return seen


def _cycles(edges: dict[str, list[str]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    counter = 0
    low: dict[str, int] = {}
    order: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in edges:
        if root in order:
            continue
        work = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                order[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = [c for c in edges.get(node, []) if c in edges]
            if child_i < len(children):
                work.append((node, child_i + 1))
                child = children[child_i]
                if child not in order:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], order[child])
                continue
            if low[node] == order[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, []):
                    found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


# --- semantic pass ----------------------------------------------------------------------------------


def _semantic_violations(flow: Flow) -> Iterator[Violation]:
    steps = flow.by_id

    def message_ref(path: str, event: str, target: str) -> Iterator[Violation]:
        step = steps.get(target)
        if step is None:
            yield Violation(path, "dangling_reference", f"{target!r} is no step of this flow")
        elif not isinstance(step, SendEmail | SendSms):
            yield Violation(path, "not_a_message", f"step {target!r} sends no message to be {event}")
        elif event == "opened" and not isinstance(step, SendEmail):
            yield Violation(path, "opens_not_tracked", f"opens are tracked for emails only, {target!r} is an SMS")

    for i, step in enumerate(flow.steps):
        if isinstance(step, Wait | WaitFor):
            name, duration = ("duration", step.duration) if isinstance(step, Wait) else ("timeout", step.timeout)
            if duration.total_seconds > MAX_WAIT_SECONDS:
                yield Violation(f"/steps/{i}/{name}", "wait_too_long", "a wait lasts at most 365 days")
        if isinstance(step, WaitFor) and step.step is not None:
            yield from message_ref(f"/steps/{i}/step", step.event, step.step)
        if isinstance(step, Branch):
            yield from _condition_refs(step.condition, f"/steps/{i}/condition", message_ref)
        if isinstance(step, Notify) and step.to != "owner" and not _EMAIL.match(step.to):
            yield Violation(f"/steps/{i}/to", "invalid_recipient", "`to` is `owner` or an email address")
        if isinstance(step, SendSms) and not requires_field(flow.filter, "phone"):
            yield Violation(
                f"/steps/{i}",
                "sms_without_phone_filter",
                "the entry filter does not require a phone number: contacts without one skip this SMS",
                "warning",
            )
    for g, goal in enumerate(flow.goals):
        yield from _condition_refs(goal.condition, f"/goals/{g}/condition", message_ref)
    if flow.filter is not None:
        for node in walk(flow.filter):
            if isinstance(node, EngagementCondition):
                yield Violation(
                    "/filter", "engagement_in_filter", "a contact has no engagement in a flow before entering it"
                )
    ids = [g.id for g in flow.goals]
    for g, gid in enumerate(ids):
        if ids.index(gid) != g:
            yield Violation(f"/goals/{g}/id", "duplicate_id", f"goal id {gid!r} is used twice")


def _condition_refs(cond: Any, path: str, check: Any) -> Iterator[Violation]:
    for node in walk(cond):
        if isinstance(node, EngagementCondition):
            yield from check(path, node.event, node.step)
