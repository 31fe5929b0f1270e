"""The OpenAPI 3.1 description of the API, built from the declared operations (`api.registry`).

Every route is declared once with `operation(...)`; this module turns those records into the
document served at `GET /openapi.json`: paths and methods, path and query parameters, request
bodies per content type, the success answer and every error answer (in the one error shape),
the bearer key scheme on routes that need a permission, and that permission in the description.
Body schemas come from the pydantic models the routes name (classes, or names in `api.schemas`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib.access import GRANTS, ROLES, Permission
from chalicelib.api import schemas
from chalicelib.api.registry import Operation

TITLE = "Floe API"
VERSION = "1.0"
SCHEMES = "#/components/schemas/{model}"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PATH_PARAM = re.compile(r"{([^}]+)}")

Mode = Literal["validation", "serialization"]

DESCRIPTION = """\
Marketing automation flows: contacts, CRM data, segments, forms, templates and the flows that use them.

Marketer routes need an API key: `Authorization: Bearer floe_<key id>_<secret>`. Each key is bound to a
role (`admin`, `flow_admin`, `content_editor`); each operation names the permission it needs. A missing,
malformed, unknown or revoked key is answered 401; a role without the permission 403, and nothing changes.

Every error is JSON: `{"error": {"code": "...", "message": "...", "details": [...]}}` with a 4xx status;
`details` lists every violation with a JSON pointer `path`. Lists answer a page and a `next_cursor`: pass
it back as `cursor` for the next page (null on the last one); `limit` sets the page size.
"""


class UnknownSchema(LookupError):
    """An operation names a body schema that `api.schemas` does not define."""


def _model(ref: type[BaseModel] | str) -> type[BaseModel]:
    if isinstance(ref, str):
        found = getattr(schemas, ref, None)
        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise UnknownSchema(f"no model {ref!r} in chalicelib.api.schemas")
        return found
    return ref


def _holders(permission: Permission) -> list[str]:
    return [role for role in ROLES if permission in GRANTS[role]]


def _operation_id(op: Operation) -> str:
    words = re.sub(r"[{}]", "", op.path).strip("/").replace("/", "_").replace("-", "_").replace(".", "_")
    return f"{op.method.lower()}_{words or 'root'}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _takes_body(op: Operation) -> bool:
    return op.request is not None or (op.method in BODY_METHODS and tuple(op.content_types) != ("application/json",))


def _error_answers(op: Operation, max_body: int) -> dict[int, str]:
    answers: dict[int, str] = {
        400: "The request is malformed: a body that is not JSON, a bad query parameter or a bad link.",
    }
    if op.permission is not None:
        answers[401] = "No API key, or not a valid one (malformed, unknown, wrong secret or revoked)."
        answers[403] = f"The key's role lacks the `{op.permission}` permission; nothing was changed."
    if _PATH_PARAM.search(op.path):
        answers[404] = "Nothing is found at this path."
    if _takes_body(op):
        answers[413] = f"The body is larger than {op.max_body or max_body} bytes."
        answers[415] = f"The body's content type is not one of: {', '.join(op.content_types)}."
        answers[422] = "The body has problems; `details` lists each one with its path."
    return answers


def _request_body(op: Operation, refs: dict[tuple[type[BaseModel], Mode], dict[str, Any]]) -> dict[str, Any] | None:
    if op.request is not None:
        schema = refs[(_model(op.request), "validation")]
        return {"required": True, "content": {ct: {"schema": schema} for ct in op.content_types}}
    if not _takes_body(op):
        return None
    # A body the operation accepts but does not read (e.g. RFC 8058's `List-Unsubscribe=One-Click`).
    loose = {"text/plain": {"type": "string"}}
    return {
        "required": False,
        "content": {ct: {"schema": loose.get(ct, {"type": "object"})} for ct in op.content_types},
    }


def _success(op: Operation, refs: dict[tuple[type[BaseModel], Mode], dict[str, Any]]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": op.summary}
    content: dict[str, Any] = {}
    if op.response is not None:
        content["application/json"] = {"schema": refs[(_model(op.response), "serialization")]}
    for media, description in op.media.items():
        content[media] = {"schema": {"type": "string", "description": description}}
    if content:
        answer["content"] = content
    elif 300 <= op.status < 400:
        answer["headers"] = {"Location": {"description": "Where to go.", "schema": {"type": "string"}}}
    elif op.status != 204:
        # Declared without a body schema: say so rather than invent one (the tests refuse this).
        answer["content"] = {"application/json": {"schema": {}}}
    return answer


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    params.extend(
        {"name": p.name, "in": "query", "required": False, "description": p.description, "schema": p.schema}
        for p in op.query
    )
    return params


def _describe(op: Operation) -> str:
    if op.permission is None:
        return "Public: no API key needed."
    roles = ", ".join(f"`{r}`" for r in _holders(op.permission))
    return f"Needs the `{op.permission}` permission (roles: {roles})."


def build(operations: dict[tuple[str, str], Operation], *, max_body: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these operations."""
    wanted: list[tuple[type[BaseModel], Mode]] = [(schemas.Error, "serialization")]
    for op in operations.values():
        if op.request is not None:
            wanted.append((_model(op.request), "validation"))
        if op.response is not None:
            wanted.append((_model(op.response), "serialization"))
    keyed, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=SCHEMES)
    refs: dict[tuple[type[BaseModel], Mode], dict[str, Any]] = dict(keyed)  # type: ignore[arg-type]

    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(operations.values(), key=lambda o: (o.path, o.method)):
        responses: dict[str, Any] = {str(op.status): _success(op, refs)}
        errors = _error_answers(op, max_body)
        for status, why in op.errors:
            if status < 400:
                # Another success, e.g. 201 from an upsert that created: same body.
                responses[str(status)] = {**_success(op, refs), "description": why}
            else:
                errors[status] = why
        responses.update({str(status): _error(why) for status, why in sorted(errors.items())})
        entry: dict[str, Any] = {
            "operationId": _operation_id(op),
            "summary": op.summary,
            "description": _describe(op),
            "tags": [op.tag],
            "parameters": _parameters(op),
            "responses": responses,
            "security": [{"apiKey": []}] if op.permission is not None else [],
        }
        if op.permission is not None:
            entry["x-permission"] = op.permission
        body = _request_body(op, refs)
        if body is not None:
            entry["requestBody"] = body
        paths.setdefault(op.path, {})[op.method.lower()] = entry

    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": paths,
        "tags": [{"name": tag} for tag in sorted({op.tag for op in operations.values()})],
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "floe_<key id>_<secret>",
                    "description": "An API key bound to a role; created by an admin with `POST /keys`.",
                }
            },
        },
    }
