"""Hypothesis strategies shared by the condition, segment-plan and segment tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def combined(leaves: st.SearchStrategy[dict[str, Any]], *, max_leaves: int) -> st.SearchStrategy[dict[str, Any]]:
    """Condition documents: the leaves, and `all`, `any` and `not` over them, nested."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda cs: {"type": "all", "conditions": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda cs: {"type": "any", "conditions": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda c: {"type": "not", "condition": c}, inner),
        ),
        max_leaves=max_leaves,
    )
