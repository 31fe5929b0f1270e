"""Marketer routes for bulk contact imports: upload a CSV or JSON lines file, follow its progress."""

from __future__ import annotations

from typing import Any, Literal

from chalice import Blueprint, Response
from pydantic import Field

from chalicelib.api.authorizer import api_key
from chalicelib.api.http import page_params, paged
from chalicelib.api.registry import PAGE, operation
from chalicelib.bootstrap import runtime
from chalicelib.contacts.files import FORMATS, MAX_BODY, MAX_ROWS
from chalicelib.schema import Model

bp = Blueprint(__name__)
TAG = "imports"


class RowError(Model):
    row: int = Field(description="The data row, from 1 (the CSV header and blank lines are not counted).")
    line: int = Field(description="The line of the file the row starts on, from 1.")
    path: str = Field(description="Where in the row's contact the problem is, as in the errors of `PUT /contacts`.")
    code: str
    message: str
    column: str | None = Field(default=None, description="The CSV column of the problem, when there is one.")


class ImportSummary(Model):
    import_id: str = Field(description="Derived from the file's bytes and format: the same file, the same import.")
    format: Literal["csv", "jsonl"]
    status: Literal["receiving", "queued", "running", "done"] = Field(
        description="`receiving` while the upload is read; `queued` until the first chunk is applied; "
        "`running`; `done` when every valid row is applied."
    )
    rows_total: int = Field(description="Data rows in the file.")
    rows_valid: int = Field(description="Rows that passed the checks and were queued.")
    rows_invalid: int = Field(description="Rows refused at upload (listed in `errors`).")
    rows_done: int = Field(description="Queued rows applied so far: `created + updated + failed`.")
    created: int
    updated: int
    failed: int = Field(description="Valid rows that could not be applied, e.g. an email taken by another contact.")
    percent: int = Field(ge=0, le=100, description="Share of the valid rows applied.")
    chunks: int = Field(description="Chunks queued.")
    chunks_done: int
    error_count: int = Field(description="Every row error, while `errors` lists at most the first 100.")
    created_at: str
    updated_at: str


class ImportView(ImportSummary):
    errors: list[RowError]


class ImportPage(Model):
    imports: list[ImportSummary]
    next_cursor: str | None


def _service() -> Any:
    from chalicelib.engine.imports import ImportService

    return ImportService(runtime())


@operation(
    bp, "POST", "/imports", summary="Import contacts from a CSV or JSON lines file", permission="contacts.edit",
    tag=TAG, authorizer=api_key, response=ImportView, status=202, content_types=tuple(FORMATS), max_body=MAX_BODY,
    errors=(
        (200, "this file was uploaded before: its import, nothing queued again"),
        (413, f"the body is larger than {MAX_BODY} bytes or has more than {MAX_ROWS} rows"),
    ),
)  # fmt: skip
def start_import() -> Response:
    request = bp.current_request
    view, started = _service().start(request.raw_body or b"", request.headers.get("content-type") or "")
    return Response(body=view, status_code=202 if started else 200)


@operation(
    bp, "GET", "/imports", summary="List imports", permission="contacts.view", tag=TAG, authorizer=api_key,
    response=ImportPage,
    query=PAGE,
)  # fmt: skip
def list_imports() -> dict[str, Any]:
    cursor, limit = page_params(bp.current_request)
    items, next_cursor = _service().page(cursor, limit)
    return paged(items, next_cursor, "imports")


@operation(
    bp, "GET", "/imports/{import_id}", summary="Read an import's progress and row errors",
    permission="contacts.view", tag=TAG, authorizer=api_key, response=ImportView,
)  # fmt: skip
def get_import(import_id: str) -> dict[str, Any]:
    return dict(_service().get(import_id))
