"""CRM objects of a contact: activities, sales, requests."""

from __future__ import annotations

from chalicelib.storage.time import Clock, utcnow


class CrmObjects:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
