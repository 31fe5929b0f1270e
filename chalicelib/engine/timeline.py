"""A contact's timeline, written from stored changes: flows entered and left, messages, engagement,
form submissions, field changes, CRM objects."""

from __future__ import annotations

from typing import Any

from chalicelib.engine.ports import Runtime


def timeline_change(rt: Runtime, change: Any) -> None:
    """Add what this change means for its contact's timeline."""
    return None
