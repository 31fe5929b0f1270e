"""Segments: saved conditions over contacts, counted and paged through the segment index."""

from __future__ import annotations

from typing import Any

from chalicelib.engine.ports import Runtime


def index_change(rt: Runtime, change: Any) -> None:
    """Keep the segment index in step with one contact change."""
    return None
