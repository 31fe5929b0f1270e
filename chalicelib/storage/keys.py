"""API keys: create (the secret is shown once), list, revoke, and verify a presented key."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.access import matches, new_secret, split
from chalicelib.storage.models import ApiKeyModel
from chalicelib.storage.time import Clock, utcnow


class ApiKeys:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    def create(self, name: str, role: str) -> tuple[ApiKeyModel, str]:
        key_id, key, stored = new_secret()
        item = ApiKeyModel(key_id=key_id, secret_hash=stored, role=role, name=name, created_at=self._clock())
        item.save(condition=ApiKeyModel.key_id.does_not_exist())
        return item, key

    def all(self) -> list[ApiKeyModel]:
        return sorted(ApiKeyModel.scan(), key=lambda k: k.created_at)

    def get(self, key_id: str) -> ApiKeyModel | None:
        try:
            return ApiKeyModel.get(key_id, consistent_read=True)
        except DoesNotExist:
            return None

    def revoke(self, key_id: str) -> ApiKeyModel | None:
        item = ApiKeyModel(key_id=key_id)
        try:
            item.update(
                actions=[ApiKeyModel.revoked_at.set(self._clock())],
                condition=ApiKeyModel.key_id.exists() & ApiKeyModel.revoked_at.does_not_exist(),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        return self.get(key_id)

    def verify(self, token: str) -> ApiKeyModel | None:
        """The live key this token presents, or None (malformed, unknown, wrong secret, revoked)."""
        parts = split(token)
        if parts is None:
            return None
        item = self.get(parts[0])
        if item is None or item.revoked_at is not None or not matches(parts[1], item.secret_hash):
            return None
        return item
