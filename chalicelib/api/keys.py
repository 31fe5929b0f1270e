"""Admin routes for API keys: create (the key is shown this once), list, revoke."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.access import ROLES
from chalicelib.api.authorizer import api_key
from chalicelib.api.http import json_object
from chalicelib.api.registry import operation
from chalicelib.bootstrap import runtime
from chalicelib.engine.errors import NotFound, Unprocessable

bp = Blueprint(__name__)
TAG = "keys"


def key_view(item: Any) -> dict[str, Any]:
    """A key as the API and the admin command show it: never its secret or the secret's hash."""
    return {
        "key_id": item.key_id,
        "name": item.name,
        "role": item.role,
        "created_at": item.created_at.isoformat(),
        "revoked_at": item.revoked_at.isoformat() if item.revoked_at else None,
    }


@operation(
    bp, "POST", "/keys", summary="Create an API key", permission="keys.manage", tag=TAG, authorizer=api_key,
    request="KeyRequest", response="NewKey", status=201,
)  # fmt: skip
def create_key() -> Response:
    body = json_object(bp.current_request)
    name, role = body.get("name"), body.get("role")
    problems = []
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 128:
        problems.append({"path": "/name", "code": "invalid", "message": "a name of 1-128 characters"})
    if role not in ROLES:
        problems.append({"path": "/role", "code": "invalid", "message": f"one of {list(ROLES)}"})
    if unknown := sorted(set(body) - {"name", "role"}):
        problems.extend({"path": f"/{k}", "code": "unknown_field", "message": "not a key field"} for k in unknown)
    if problems:
        raise Unprocessable("invalid_key", "the key request has problems", problems)
    item, key = runtime().keys.create(str(name).strip(), str(role))
    return Response(body={**key_view(item), "key": key}, status_code=201)


@operation(
    bp, "GET", "/keys", summary="List API keys", permission="keys.manage", tag=TAG, authorizer=api_key,
    response="KeyList",
)  # fmt: skip
def list_keys() -> dict[str, Any]:
    return {"keys": [key_view(k) for k in runtime().keys.all()]}


@operation(
    bp, "DELETE", "/keys/{key_id}", summary="Revoke an API key", permission="keys.manage", tag=TAG,
    authorizer=api_key, response="Key",
)  # fmt: skip
def revoke_key(key_id: str) -> dict[str, Any]:
    item = runtime().keys.revoke(key_id)
    if item is None:
        raise NotFound("key_not_found", f"no API key {key_id!r}")
    return key_view(item)
