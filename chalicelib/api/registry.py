"""Every HTTP operation declared once: its route, who may call it, and what it takes and returns.

`operation` registers the Chalice route (with the API key authorizer when the operation needs a
permission) and records an `Operation`; the permission check, `GET /openapi.json` and the tests that
walk the role matrix all read the same records, so they cannot drift apart from the routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalice import Blueprint
from pydantic import BaseModel

from chalicelib.access import Permission

F = TypeVar("F", bound=Callable[..., Any])
JSON = ("application/json",)


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


# The query of every list operation (see `api.http.page_params`).
PAGE = (
    Param("cursor", "Where the previous page ended (`next_cursor`)."),
    Param("limit", "Items per page, 1-200 (default 50).", {"type": "integer", "minimum": 1, "maximum": 200}),
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    permission: Permission | None
    tag: str
    # A pydantic model, or the name of one in `api.schemas`.
    request: type[BaseModel] | str | None = None
    response: type[BaseModel] | str | None = None
    status: int = 200
    content_types: tuple[str, ...] = JSON
    query: tuple[Param, ...] = ()
    # Other answers than the success and the generic errors, e.g. (409, "the email is taken").
    errors: tuple[tuple[int, str], ...] = ()
    # Answers that are not JSON: {"image/gif": "the pixel"}.
    media: dict[str, str] = field(default_factory=dict)
    # The largest accepted body in bytes; 0 means the default of `api.http.MAX_BODY`.
    max_body: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


OPERATIONS: dict[tuple[str, str], Operation] = {}


def operation(
    bp: Blueprint,
    method: str,
    path: str,
    *,
    summary: str,
    permission: Permission | None,
    tag: str,
    authorizer: Any = None,
    **details: Any,
) -> Callable[[F], F]:
    op = Operation(method=method, path=path, summary=summary, permission=permission, tag=tag, **details)
    if op.key in OPERATIONS:
        raise ValueError(f"{method} {path} is declared twice")
    OPERATIONS[op.key] = op
    route: dict[str, Any] = {"methods": [method], "content_types": list(op.content_types)}
    if permission is not None:
        if authorizer is None:
            raise ValueError(f"{method} {path} needs a permission but has no authorizer")
        route["authorizer"] = authorizer

    def register(fn: F) -> F:
        bp.route(path, **route)(fn)
        return fn

    return register


def find(method: str, resource_path: str) -> Operation | None:
    return OPERATIONS.get((method.upper(), resource_path))
