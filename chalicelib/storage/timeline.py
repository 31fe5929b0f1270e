"""A contact's timeline: what happened to it, newest first."""

from __future__ import annotations

from chalicelib.storage.time import Clock, utcnow


class Timeline:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
