"""Bulk imports: their progress counters and per-row error reports."""

from __future__ import annotations

from chalicelib.storage.time import Clock, utcnow


class Imports:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
