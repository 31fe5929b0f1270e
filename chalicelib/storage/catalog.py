"""Marketer-owned documents of one kind in the catalog table: segments, custom field definitions,
templates. Listed by kind with a cursor; created once per id; changed and deleted by id."""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from chalicelib.contacts.input import FieldDefinition
from chalicelib.storage.models import FieldDefinitionModel, SegmentModel, TemplateModel, _CatalogBase
from chalicelib.storage.paging import Page, decode_cursor, encode_cursor
from chalicelib.storage.time import Clock, utcnow

M = TypeVar("M", bound=_CatalogBase)


class Catalog(Generic[M]):
    def __init__(self, model: type[M], kind: str, clock: Clock = utcnow) -> None:
        self._model = model
        self._kind = kind
        self._clock = clock

    def create(self, item_id: str, **attrs: Any) -> M | None:
        """The new document, or None when one with this id exists."""
        now = self._clock()
        item = self._model(self._kind, item_id, created_at=now, updated_at=now, **attrs)
        try:
            item.save(condition=self._model.item_id.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return item

    def get(self, item_id: str) -> M | None:
        try:
            return self._model.get(self._kind, item_id, consistent_read=True)
        except DoesNotExist:
            return None

    def replace(self, item: M, **attrs: Any) -> M:
        for name, value in attrs.items():
            setattr(item, name, value)
        item.updated_at = self._clock()
        item.save(condition=self._model.item_id.exists())
        return item

    def delete(self, item_id: str) -> bool:
        try:
            self._model(self._kind, item_id).delete(condition=self._model.item_id.exists())
        except DeleteError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def page(self, *, cursor: str | None, limit: int) -> Page[M]:
        result = self._model.query(self._kind, limit=limit, last_evaluated_key=decode_cursor(cursor))
        items = list(result)
        return Page(items, encode_cursor(result.last_evaluated_key))

    def all(self) -> list[M]:
        return list(self._model.query(self._kind))


class FieldDefinitions(Catalog[FieldDefinitionModel]):
    """Custom field definitions, kept for a short while per container: every contact write reads them."""

    TTL_SECONDS = 30.0

    def __init__(self, clock: Clock = utcnow) -> None:
        super().__init__(FieldDefinitionModel, "field", clock)
        self._cached: tuple[float, dict[str, FieldDefinition]] | None = None

    def definitions(self, *, fresh: bool = False) -> dict[str, FieldDefinition]:
        now = time.monotonic()
        if fresh or self._cached is None or now - self._cached[0] > self.TTL_SECONDS:
            defs = {
                d.item_id: FieldDefinition(d.item_id, d.field_type, tuple(d.options or ()), d.label)  # type: ignore[arg-type]
                for d in self.all()
            }
            self._cached = (now, defs)
        return self._cached[1]

    def forget(self) -> None:
        self._cached = None


def segments(clock: Clock = utcnow) -> Catalog[SegmentModel]:
    return Catalog(SegmentModel, "segment", clock)


def templates(clock: Clock = utcnow) -> Catalog[TemplateModel]:
    return Catalog(TemplateModel, "template", clock)
