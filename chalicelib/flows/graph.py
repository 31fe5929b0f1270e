"""Walks over a flow's step graph that the compiler and the step worker share.

A `goto` is a jump with no state of its own, so every edge is followed through `resolve`. A chain of
`branch` steps is decided in one go, so `route_destinations` lists where such a chain can end up.
"""

from __future__ import annotations

from chalicelib.flows.model import Branch, Flow, Goto


def resolve(flow: Flow, step_id: str) -> str:
    """Follow `goto` steps from `step_id` to the first step that is no goto; its id.

    Raises KeyError for an unknown id and ValueError for a loop made of gotos only (validation
    rejects both, so a validated flow never raises).
    """
    steps = flow.by_id
    seen: list[str] = []
    current = step_id
    while True:
        step = steps.get(current)
        if step is None:
            raise KeyError(current)
        if not isinstance(step, Goto):
            return current
        if current in seen:
            raise ValueError("the gotos form a loop: " + " -> ".join([*seen, current]))
        seen.append(current)
        current = step.target


def route_destinations(flow: Flow, branch_id: str) -> list[str]:
    """The steps a chain of branches starting at `branch_id` can route to.

    Follows only the `yes`/`no` edges of branches (through gotos), depth first with `yes` before
    `no`; lists each step that is neither a branch nor a goto once, in the order first met.
    """
    steps = flow.by_id
    root = steps.get(branch_id)
    if root is None:
        raise KeyError(branch_id)
    if not isinstance(root, Branch):
        raise ValueError(f"step {branch_id!r} is no branch")
    found: list[str] = []
    visited: set[str] = set()

    def visit(branch: Branch) -> None:
        visited.add(branch.id)
        for target in (branch.yes, branch.no):
            dest = resolve(flow, target)
            step = steps[dest]
            if isinstance(step, Branch):
                if dest not in visited:
                    visit(step)
            elif dest not in found:
                found.append(dest)

    visit(root)
    return found
