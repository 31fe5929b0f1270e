"""Bulk imports of contacts from CSV or JSON lines."""

from __future__ import annotations

from typing import Any

from chalicelib.engine.ports import Runtime


class ImportWorker:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def handle(self, body: dict[str, Any]) -> None:
        raise ValueError(f"unknown import message {body.get('type')!r}")
