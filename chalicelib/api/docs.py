"""The API description: GET /openapi.json, built from the declared operations."""

from __future__ import annotations

import functools
from typing import Any

from chalice import Blueprint

from chalicelib.api.registry import operation

bp = Blueprint(__name__)


@functools.cache
def _document() -> dict[str, Any]:
    # Every route is declared when the app is imported, so one build per container is enough.
    from chalicelib.api.http import MAX_BODY
    from chalicelib.api.openapi import build
    from chalicelib.api.registry import OPERATIONS

    return build(OPERATIONS, max_body=MAX_BODY)


@operation(
    bp, "GET", "/openapi.json", summary="Describe this API (OpenAPI 3.1)", permission=None, tag="public",
    response="OpenApiDocument",
)  # fmt: skip
def openapi() -> dict[str, Any]:
    return _document()
