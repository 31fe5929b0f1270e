"""The segment index: one item per (indexed value, contact), kept by the change worker."""

from __future__ import annotations

from chalicelib.storage.time import Clock, utcnow


class SegmentIndex:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
