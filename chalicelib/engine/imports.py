"""Bulk imports of contacts from CSV or JSON lines: read the upload, check each row, queue and apply chunks.

The upload (`ImportService.start`) reads the file row by row, never holding all rows: each row is
checked by `contacts.input.check_contact` (the checks of `PUT /contacts`); a bad row becomes an error
with its row and line number at once, good rows go to the imports queue in chunks of at most
`CHUNK_ROWS` rows. The worker (`ImportWorker`) upserts each row of a chunk and adds the chunk's counts
to the import exactly once, however often SQS delivers it.

The import id is a hash of the format and the bytes of the file, so uploading the same file again
answers with the same import and queues nothing; and since every row is an upsert by external id or
email, applying a row twice never makes a second contact.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.contacts.files import CHUNK_BYTES, CHUNK_ROWS, FORMATS, MAX_ROWS
from chalicelib.contacts.input import CHANNELS, ContactWrite, FieldDefinition, InputError, Problem, check_contact
from chalicelib.contacts.model import STANDARD_FIELDS
from chalicelib.engine.errors import ApiError, NotFound, PayloadTooLarge, Unprocessable
from chalicelib.engine.ports import Queue, Runtime
from chalicelib.logs import logger
from chalicelib.storage.contacts import DuplicateContact
from chalicelib.storage.imports import DONE, MAX_ERRORS, RECEIVING
from chalicelib.storage.models import ImportModel

CHUNK = "import_chunk"
_ID = re.compile(r"^imp_[0-9a-f]{32}$")
_CONSENT_COLUMN = re.compile(r"^consent_(email|sms)(?:_(source|at))?$")
_SET_COLUMNS = ("tags", "lists")
SEPARATOR = ";"
# The longest path or message kept in a row error.
CLIP = 300


class UnsupportedMediaType(ApiError):
    status = 415


def import_id_for(raw: bytes, fmt: str) -> str:
    return "imp_" + hashlib.sha256(fmt.encode() + b"\n" + raw).hexdigest()[:32]


def format_of(content_type: str) -> str:
    media = content_type.split(";")[0].split(",")[0].strip().lower()
    fmt = FORMATS.get(media)
    if fmt is None:
        raise UnsupportedMediaType(
            "unsupported_media_type", f"send the file as one of {sorted(FORMATS)}, not {content_type!r}"
        )
    return fmt


# -- reading rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One data row: its body as for `PUT /contacts`, or the problems that kept it from being read."""

    row: int  # 1-based among the data rows (no header, no blank lines)
    line: int  # the line of the file it starts on
    body: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)


def _problem(code: str, message: str, path: str = "") -> Problem:
    return Problem(path, code, message)


class JsonLines:
    """Each non-blank line is one JSON object, like the body of `PUT /contacts`."""

    columns: Mapping[str, str] = {}

    def __init__(self, text: str) -> None:
        self._text = text

    def __iter__(self) -> Iterator[Row]:
        row = 0
        # StringIO splits on "\n" only, so U+2028 inside a JSON string stays in its line.
        for number, line in enumerate(io.StringIO(self._text), start=1):
            if not line.strip():
                continue
            row += 1
            try:
                body = json.loads(line)
            except ValueError as exc:
                yield Row(row, number, problems=[_problem("malformed_json", f"the line is not valid JSON: {exc}")])
                continue
            if not isinstance(body, dict):
                yield Row(row, number, problems=[_problem("not_an_object", "each line must be a JSON object")])
                continue
            yield Row(row, number, body)

    def count(self) -> int:
        return sum(1 for line in io.StringIO(self._text) if line.strip())


@dataclass(frozen=True)
class Column:
    header: str
    kind: str  # "standard", "field", "set" or "consent"
    name: str  # the contact field, custom field, `tags`/`lists`, or the consent channel
    part: str = ""  # of a consent column: "status", "source" or "at"

    @property
    def path(self) -> str:
        """Where `check_contact` reports problems of this column's value."""
        match self.kind:
            case "field":
                return f"/fields/{self.name}"
            case "consent":
                return f"/consent/{self.name}/{self.part}"
        return f"/{self.name}"


def _column(text: str, definitions: Mapping[str, FieldDefinition]) -> Column | None:
    header = text.strip()
    name = header.lower()
    if name in STANDARD_FIELDS:
        return Column(header, "standard", name)
    if name in _SET_COLUMNS:
        return Column(header, "set", name)
    if consent := _CONSENT_COLUMN.match(name):
        return Column(header, "consent", consent.group(1), consent.group(2) or "status")
    field_name = name.removeprefix("fields.")
    if field_name in definitions:
        return Column(header, "field", field_name)
    return None


def _sniff_delimiter(text: str) -> str:
    """Comma, or the semicolon or tab that a spreadsheet in another locale writes."""
    first = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=first.count)


class CsvRows:
    """A CSV file with a header row; see docs/imports.md for the columns.

    The header is checked when the reader is made, so a file whose columns cannot work is refused
    before anything is stored or queued.
    """

    def __init__(self, text: str, definitions: Mapping[str, FieldDefinition], *, consent_source: str) -> None:
        self._text = text
        self._source = consent_source
        self._delimiter = _sniff_delimiter(text)
        header = next(self._records(), None)
        if header is None:
            raise Unprocessable("empty_file", "the file has no rows")
        if header[2] and header[2][0].startswith("\x00"):
            raise Unprocessable("malformed_csv", f"the header row cannot be read: {header[2][0][1:]}")
        self._columns = self._check_header(header[2], definitions)
        self.columns = {c.path: c.header for c in self._columns if c is not None}

    def _records(self) -> Iterator[tuple[int, int, list[str]]]:
        """(record number, first line, cells) of every non-blank record, the header first."""
        reader = csv.reader(io.StringIO(self._text, newline=""), delimiter=self._delimiter)
        number, line = 0, 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield number, line, [f"\x00{exc}"]
                line = reader.line_num + 1
                continue
            start, line = line, reader.line_num + 1
            if any(c.strip() for c in cells):
                number += 1
                yield number, start, cells

    @staticmethod
    def _check_header(header: list[str], definitions: Mapping[str, FieldDefinition]) -> list[Column | None]:
        columns: list[Column | None] = []
        problems: list[dict[str, str]] = []
        seen: dict[tuple[str, str, str], str] = {}
        for index, text in enumerate(header):
            if not text.strip():
                columns.append(None)  # a trailing separator in the header: the column is ignored
                continue
            column = _column(text, definitions)
            path = f"/header/{index}"
            if column is None:
                problems.append(
                    {
                        "path": path,
                        "code": "unknown_column",
                        "message": f"{text!r} is not a contact field, `tags`, `lists`, a consent column or a "
                        "custom field; define custom fields at /fields first",
                    }
                )
            elif (column.kind, column.name, column.part) in seen:
                other = seen[(column.kind, column.name, column.part)]
                problems.append(
                    {"path": path, "code": "duplicate_column", "message": f"{text!r} repeats the column {other!r}"}
                )
            else:
                seen[(column.kind, column.name, column.part)] = text
            columns.append(column)
        if problems:
            raise Unprocessable("invalid_header", f"the header row has {len(problems)} problem(s)", problems)
        names = {c.name for c in columns if c is not None and c.kind == "standard"}
        if not names & {"email", "external_id"}:
            raise Unprocessable(
                "identifier_column_required",
                "the CSV needs an `email` or an `external_id` column to know which contact each row is",
            )
        return columns

    def count(self) -> int:
        return sum(1 for _ in self._records()) - 1

    def __iter__(self) -> Iterator[Row]:
        records = self._records()
        next(records, None)  # the header
        for number, line, cells in records:
            row = number - 1
            if cells and cells[0].startswith("\x00"):
                yield Row(row, line, problems=[_problem("malformed_csv", f"the row cannot be read: {cells[0][1:]}")])
                continue
            if len(cells) > len(self._columns) and any(c.strip() for c in cells[len(self._columns) :]):
                message = f"the row has {len(cells)} cells but the header names {len(self._columns)} columns"
                yield Row(row, line, problems=[_problem("too_many_cells", message)])
                continue
            yield Row(row, line, self._body(cells))

    def _body(self, cells: list[str]) -> dict[str, Any]:
        # A blank cell is "not given": an import adds and changes, it never clears a stored value.
        body: dict[str, Any] = {}
        consent: dict[str, dict[str, str]] = {}
        for column, cell in zip(self._columns, cells, strict=False):
            value = cell.strip()
            if column is None or not value:
                continue
            match column.kind:
                case "standard":
                    body[column.name] = value
                case "field":
                    body.setdefault("fields", {})[column.name] = value
                case "set":
                    items = [p.strip() for p in value.split(SEPARATOR) if p.strip()]
                    if items:
                        body[column.name] = items
                case "consent":
                    consent.setdefault(column.name, {})[column.part] = (
                        value.lower() if column.part == "status" else value
                    )
        for channel in CHANNELS:
            given = consent.get(channel)
            if given is not None and "status" in given:
                given.setdefault("source", self._source)
        if consent:
            body["consent"] = consent
        return body


def _column_of(path: str, columns: Mapping[str, str]) -> str | None:
    for prefix, header in columns.items():
        if path == prefix or path.startswith(prefix + "/"):
            return header
    return None


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def row_error(row: int, line: int, problem: Problem, columns: Mapping[str, str]) -> dict[str, Any]:
    # Clipped: a JSON line can name a field of any length, and the errors live on one DynamoDB item.
    error: dict[str, Any] = {
        "row": row,
        "line": line,
        "path": _clip(problem.path),
        "code": problem.code,
        "message": _clip(problem.message),
    }
    column = _column_of(problem.path, columns)
    if column is not None:
        error["column"] = column
    return error


# -- chunks on the queue --------------------------------------------------------------------------


def encode_write(write: ContactWrite) -> dict[str, Any]:
    return {
        "values": write.values,
        "fields": write.fields,
        "clear_fields": write.clear_fields,
        "tags": sorted(write.tags) if write.tags is not None else None,
        "lists": sorted(write.lists) if write.lists is not None else None,
        "consent": write.consent,
    }


def decode_write(data: Mapping[str, Any]) -> ContactWrite:
    return ContactWrite(
        values=dict(data["values"]),
        fields=dict(data["fields"]),
        clear_fields=list(data.get("clear_fields") or []),
        tags=set(data["tags"]) if data.get("tags") is not None else None,
        lists=set(data["lists"]) if data.get("lists") is not None else None,
        consent=data.get("consent"),
    )


class Chunker:
    """Collects checked rows and sends them as chunks, each named by its first row number."""

    def __init__(self, queue: Queue, import_id: str) -> None:
        self._queue = queue
        self._import_id = import_id
        self._rows: list[dict[str, Any]] = []
        self._size = 0
        self.sent = 0

    def add(self, row: int, line: int, write: ContactWrite) -> bool:
        """Queue a row (sending the chunk before it when full); False when the row alone is too large."""
        entry = {"row": row, "line": line, "write": encode_write(write)}
        size = len(json.dumps(entry))
        if size > CHUNK_BYTES:
            return False
        if self._rows and (len(self._rows) >= CHUNK_ROWS or self._size + size > CHUNK_BYTES):
            self.flush()
        self._rows.append(entry)
        self._size += size
        return True

    def flush(self) -> None:
        if not self._rows:
            return
        # The first row's number names the chunk: the same file always makes the same chunks.
        first = self._rows[0]["row"]
        self._queue.send({"type": CHUNK, "import_id": self._import_id, "chunk": first, "rows": self._rows})
        self.sent += 1
        self._rows, self._size = [], 0


# -- use cases ------------------------------------------------------------------------------------


def import_summary(item: ImportModel) -> dict[str, Any]:
    done = int(item.rows_done)
    # While the file is still being read the valid rows are not known yet: measure against all rows.
    of = int(item.rows_total if item.status == RECEIVING else item.rows_valid)
    percent = 100 if item.status == DONE else min(99, done * 100 // of) if of else 0
    return {
        "import_id": item.import_id,
        "format": item.format,
        "status": item.status,
        "rows_total": int(item.rows_total),
        "rows_valid": int(item.rows_valid),
        "rows_invalid": int(item.rows_total) - int(item.rows_valid) if item.status != RECEIVING else 0,
        "rows_done": done,
        "created": int(item.created),
        "updated": int(item.updated),
        "failed": int(item.failed),
        "percent": percent,
        "chunks": int(item.chunks),
        "chunks_done": len(item.done_chunks or ()),
        "error_count": int(item.error_count),
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def import_view(item: ImportModel) -> dict[str, Any]:
    errors = [e.as_dict() if hasattr(e, "as_dict") else dict(e) for e in item.errors or []]
    return {**import_summary(item), "errors": [{k: _plain(v) for k, v in e.items()} for e in errors]}


def _plain(value: Any) -> Any:
    # DynamoDB numbers come back as Decimal-like values; row and line are whole numbers.
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class ImportService:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def start(self, raw: bytes | str, content_type: str) -> tuple[dict[str, Any], bool]:
        """Read and queue an uploaded file: (the import, whether this upload started it)."""
        fmt = format_of(content_type)
        data = raw.encode() if isinstance(raw, str) else raw
        if not data.strip():
            raise Unprocessable("empty_file", "the file has no rows")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Unprocessable("not_utf8", f"the file is not UTF-8 text (byte {exc.start})") from None
        import_id = import_id_for(data, fmt)
        existing = self._rt.imports.get(import_id)
        if existing is not None and existing.status != RECEIVING:
            return import_view(existing), False

        definitions = self._rt.fields.definitions(fresh=True)
        rows: CsvRows | JsonLines = (
            CsvRows(text, definitions, consent_source=f"import:{import_id}") if fmt == "csv" else JsonLines(text)
        )
        total = rows.count()
        if total == 0:
            raise Unprocessable("empty_file", "the file has no rows")
        if total > MAX_ROWS:
            raise PayloadTooLarge("too_many_rows", f"the file has {total} rows; an import takes at most {MAX_ROWS}")
        if existing is None and self._rt.imports.begin(import_id, fmt, rows_total=total) is None:
            # The same file was uploaded a moment ago by someone else.
            again = self._rt.imports.get(import_id)
            if again is not None and again.status != RECEIVING:
                return import_view(again), False
        # A `receiving` import was begun by an upload that did not finish (or is running now): read it
        # again; the worker counts a chunk it has seen once.
        return self._read(import_id, rows, definitions, total), True

    def _read(
        self,
        import_id: str,
        rows: CsvRows | JsonLines,
        definitions: dict[str, FieldDefinition],
        total: int,
    ) -> dict[str, Any]:
        region, now = self._rt.settings.phone_region, self._rt.clock()
        chunker = Chunker(self._rt.imports_queue, import_id)
        valid, error_count = 0, 0
        errors: list[dict[str, Any]] = []
        for row in rows:
            problems = row.problems
            if row.body is not None:
                try:
                    write = check_contact(row.body, definitions, phone_region=region, now=now)
                except InputError as exc:
                    problems = exc.problems
                else:
                    if chunker.add(row.row, row.line, write):
                        valid += 1
                        continue
                    problems = [_problem("row_too_large", f"the row holds more than {CHUNK_BYTES} bytes of data")]
            error_count += len(problems)
            errors.extend(row_error(row.row, row.line, p, rows.columns) for p in problems[: MAX_ERRORS - len(errors)])
        chunker.flush()
        if valid == 0:
            self._rt.imports.abandon(import_id)
            raise Unprocessable("no_valid_rows", f"none of the {total} row(s) can be imported", errors)
        item = self._rt.imports.queued(
            import_id, rows_total=total, rows_valid=valid, chunks=chunker.sent, errors=errors, error_count=error_count
        )
        item = item or self._rt.imports.get(import_id)
        logger.info("import queued", extra={"import_id": import_id, "rows": total, "valid": valid})
        if item is None:
            raise RuntimeError(f"import {import_id} vanished while it was queued")
        return import_view(item)

    def get(self, import_id: str) -> dict[str, Any]:
        item = self._rt.imports.get(import_id) if _ID.match(import_id) else None
        if item is None:
            raise NotFound("import_not_found", f"no import {import_id!r}")
        return import_view(item)

    def page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        page = self._rt.imports.page(cursor=cursor, limit=limit)
        return [import_summary(i) for i in page.items], page.cursor


class ImportWorker:
    """Applies one queued chunk: upserts its rows, then counts the chunk once on the import."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def handle(self, body: dict[str, Any]) -> None:
        if body.get("type") != CHUNK:
            raise ValueError(f"unknown import message {body.get('type')!r}")
        import_id, chunk = str(body["import_id"]), int(body["chunk"])
        with logger.append_context_keys(import_id=import_id, chunk=chunk):
            item = self._rt.imports.get(import_id)
            if item is None:
                logger.warning("chunk of an unknown import dropped")
                return
            if chunk in (item.done_chunks or set()):
                logger.info("chunk delivered again; it was applied and counted before")
                return
            created = updated = failed = 0
            errors: list[dict[str, Any]] = []
            for entry in body["rows"]:
                try:
                    _, _, was_created = self._rt.contacts.upsert(decode_write(entry["write"]))
                except DuplicateContact as exc:
                    failed += 1
                    what, path = (
                        ("email address", "/email") if exc.key.startswith("email:") else ("external id", "/external_id")
                    )
                    problem = Problem(path, "duplicate_contact", f"another contact ({exc.contact_id}) has this {what}")
                    errors.append(row_error(entry["row"], entry["line"], problem, {}))
                    continue
                if was_created:
                    created += 1
                else:
                    updated += 1
            counted = self._rt.imports.count_chunk(
                import_id, chunk, created=created, updated=updated, failed=failed, errors=errors
            )
            logger.info(
                "chunk applied",
                extra={
                    "rows_created": created,
                    "rows_updated": updated,
                    "rows_failed": failed,
                    "counted": counted is not None,
                },
            )
