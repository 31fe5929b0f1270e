"""Bulk imports through the API: CSV and JSON lines, per-row errors, idempotent re-upload, progress."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import handlers
from chalicelib.bootstrap import runtime
from chalicelib.contacts.files import CHUNK_ROWS, MAX_BODY, MAX_ROWS
from chalicelib.contacts.input import check_contact
from chalicelib.engine.imports import Chunker, import_id_for
from chalicelib.local.pumps import drain
from tests.functional.conftest import Stack
from tests.functional.test_lifecycle import error_of

CSV = "text/csv"
JSONL = "application/x-ndjson"
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def upload(stack: Stack, text: str, content_type: str = CSV, status: int = 202, key: str = "admin") -> dict[str, Any]:
    answer = stack.http("POST", "/imports", raw=text, content_type=content_type, key=key)
    assert answer.status_code == status, answer.body
    return dict(answer.json_body)


def progress(stack: Stack, import_id: str) -> dict[str, Any]:
    answer = stack.http("GET", f"/imports/{import_id}")
    assert answer.status_code == 200, answer.body
    return dict(answer.json_body)


def contact(stack: Stack, **query: str) -> dict[str, Any] | None:
    (name, value), *_ = query.items()
    answer = stack.http("GET", f"/contacts?{name}={value}")
    assert answer.status_code == 200, answer.body
    found = answer.json_body["contacts"]
    return dict(found[0]) if found else None


def all_contacts(stack: Stack) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = stack.http("GET", "/contacts?limit=200" + (f"&cursor={cursor}" if cursor else ""))
        assert answer.status_code == 200, answer.body
        out.extend(answer.json_body["contacts"])
        cursor = answer.json_body["next_cursor"]
        if not cursor:
            return out


def define(stack: Stack, name: str, field_type: str, **extra: Any) -> None:
    answer = stack.http("POST", "/fields", {"name": name, "type": field_type, **extra})
    assert answer.status_code == 201, answer.body


def queued_chunks(stack: Stack) -> list[dict[str, Any]]:
    """The chunk messages waiting on the imports queue (left there: they become visible again)."""
    got = stack.sqs.receive_message(QueueUrl=stack.imports_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


GOOD_AND_BAD = (
    "Email,phone,first_name,birthday,fields.vip,plan,tags,lists,consent_email,consent_email_source\n"
    "Ann@Example.COM,06 12345678,Ann,1990-04-01,yes,Gold,vip; early ,news,granted,fair 2024\n"
    "not-an-email,,Bob,,,,,,,\n"
    "cy@example.com,12,Cy,1st of May,maybe,Tin,,,,\n"
    "\n"
    "dee@example.com,+32 470 12 34 56,Dee,,no,silver,,,denied,\n"
)


def test_csv_imports_good_rows_normalised_and_reports_bad_rows(stack: Stack) -> None:
    define(stack, "birthday", "date")
    define(stack, "vip", "boolean")
    define(stack, "plan", "choice", options=["Gold", "Silver"])

    started = upload(stack, GOOD_AND_BAD)

    assert started["import_id"].startswith("imp_")
    assert started["format"] == "csv"
    assert started["status"] == "queued"
    assert (started["rows_total"], started["rows_valid"], started["rows_invalid"]) == (4, 2, 2)
    assert started["rows_done"] == 0 and started["percent"] == 0
    reported = {(e["row"], e["line"], e["path"], e["code"], e.get("column")) for e in started["errors"]}
    assert reported == {
        (2, 3, "/email", "invalid_email", "Email"),
        (3, 4, "/phone", "invalid_phone", "phone"),
        (3, 4, "/fields/birthday", "wrong_type", "birthday"),
        (3, 4, "/fields/vip", "wrong_type", "fields.vip"),
        (3, 4, "/fields/plan", "wrong_type", "plan"),
    }
    assert started["error_count"] == 5
    assert all(e["message"] for e in started["errors"])
    assert contact(stack, email="ann@example.com") is None, "rows are applied by the worker, not the upload"

    stack.settle()

    done = progress(stack, started["import_id"])
    assert done["status"] == "done" and done["percent"] == 100
    assert (done["rows_done"], done["created"], done["updated"], done["failed"]) == (2, 2, 0, 0)
    ann = contact(stack, email="ann@example.com")
    assert ann is not None
    assert ann["phone"] == "+31612345678"
    assert ann["first_name"] == "Ann"
    assert ann["fields"] == {"birthday": "1990-04-01", "vip": True, "plan": "Gold"}
    assert ann["tags"] == ["early", "vip"] and ann["lists"] == ["news"]
    assert ann["consent"]["email"]["status"] == "granted"
    assert ann["consent"]["email"]["source"] == "fair 2024"
    dee = contact(stack, email="dee@example.com")
    assert dee is not None
    assert dee["phone"] == "+32470123456"
    assert dee["fields"] == {"vip": False, "plan": "Silver"}
    # Without a source column the import itself is the recorded source of the consent.
    assert dee["consent"]["email"] == {
        "status": "denied",
        "source": f"import:{started['import_id']}",
        "at": dee["consent"]["email"]["at"],
    }
    assert "email" in dee["unsubscribed"]
    assert contact(stack, email="cy@example.com") is None
    assert len(all_contacts(stack)) == 2


def test_json_lines_import_upserts_like_put_contacts(stack: Stack) -> None:
    define(stack, "score", "number")
    before = stack.http("PUT", "/contacts", {"external_id": "crm-1", "email": "old@example.com", "company": "Old"})
    assert before.status_code == 201, before.body
    lines = [
        {"external_id": "crm-1", "email": "New@Example.com", "fields": {"score": "4,5"}},
        {"email": "eve@example.com", "phone": "+31 20 123 4567", "tags": ["b", "a"]},
        "not json {",
        ["an", "array"],
        {"email": "fay@example.com", "colour": "red"},
        {"first_name": "No Key"},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n"

    started = upload(stack, text, content_type="application/jsonl")

    assert started["format"] == "jsonl"
    assert (started["rows_total"], started["rows_valid"]) == (6, 2)
    reported = {(e["row"], e["path"], e["code"]) for e in started["errors"]}
    assert reported == {
        (3, "", "malformed_json"),
        (4, "", "not_an_object"),
        (5, "/colour", "unknown_field"),
        (6, "", "identifier_required"),
    }
    assert all("column" not in e or e["column"] is None for e in started["errors"])
    stack.settle()
    done = progress(stack, started["import_id"])
    assert (done["status"], done["created"], done["updated"], done["failed"]) == ("done", 1, 1, 0)
    moved = contact(stack, external_id="crm-1")
    assert moved is not None
    assert moved["contact_id"] == before.json_body["contact_id"]
    assert (moved["email"], moved["company"], moved["fields"]) == ("new@example.com", "Old", {"score": 4.5})
    eve = contact(stack, email="eve@example.com")
    assert eve is not None and eve["phone"] == "+31201234567" and eve["tags"] == ["a", "b"]


def test_reupload_answers_the_same_import_and_changes_nothing(stack: Stack) -> None:
    text = "email,first_name\na@example.com,A\nb@example.com,B\n"
    first = upload(stack, text)
    stack.settle()
    applied = progress(stack, first["import_id"])
    assert (applied["status"], applied["created"]) == ("done", 2)
    ann_before = contact(stack, email="a@example.com")

    again = upload(stack, text, status=200)

    assert again["import_id"] == first["import_id"]
    assert queued_chunks(stack) == [], "nothing is queued again"
    stack.settle()
    assert progress(stack, first["import_id"]) == applied
    assert len(all_contacts(stack)) == 2
    assert contact(stack, email="a@example.com") == ann_before
    # The same rows in another file are a new import, and still make no second contact.
    other = upload(stack, text.replace("\n", "\r\n"))
    assert other["import_id"] != first["import_id"]
    stack.settle()
    assert (progress(stack, other["import_id"])["updated"], len(all_contacts(stack))) == (2, 2)


def apply_imports(stack: Stack) -> None:
    """Run the import worker until its queue is empty (the change streams are not needed here)."""
    while drain(stack.sqs, stack.imports_url, handlers.imports):
        pass


def test_large_import_shows_progress_chunk_by_chunk(stack: Stack) -> None:
    # 1,000 rows about 200 people (each appears five times), so the rows are both creates and updates.
    rows, people = 1_000, 200
    text = "email,first_name,tags\n" + "".join(f"p{i % people}@example.com,P{i},bulk\n" for i in range(rows))
    started = upload(stack, text)
    chunks = rows // CHUNK_ROWS
    assert (started["rows_total"], started["rows_valid"], started["chunks"]) == (rows, rows, chunks)
    assert (started["status"], started["percent"]) == ("queued", 0)

    seen = []
    for n in range(1, chunks + 1):
        assert drain(stack.sqs, stack.imports_url, handlers.imports, batch_size=1) == 1
        now = progress(stack, started["import_id"])
        seen.append((now["status"], now["rows_done"], now["chunks_done"], now["percent"]))
        assert now["rows_done"] == n * CHUNK_ROWS == now["created"] + now["updated"]
    assert seen[0] == ("running", 100, 1, 10)
    assert seen[4] == ("running", 500, 5, 50)
    assert seen[-1] == ("done", rows, chunks, 100)
    assert drain(stack.sqs, stack.imports_url, handlers.imports) == 0
    done = progress(stack, started["import_id"])
    assert (done["created"], done["updated"], done["failed"]) == (people, rows - people, 0)
    assert len(all_contacts(stack)) == people
    last = contact(stack, email="p7@example.com")
    assert last is not None and last["first_name"] == "P807" and last["tags"] == ["bulk"]


def test_a_redelivered_chunk_is_applied_and_counted_once(stack: Stack) -> None:
    text = "email,first_name\n" + "".join(f"r{i % 30}@example.com,R{i}\n" for i in range(150))
    started = upload(stack, text)
    (first, second) = sorted(queued_chunks(stack), key=lambda c: c["chunk"])
    assert (first["chunk"], len(first["rows"]), second["chunk"], len(second["rows"])) == (1, 100, 101, 50)

    worker = handlers._import_worker()
    worker.handle(first)
    worker.handle(first)  # SQS delivers at least once
    middle = progress(stack, started["import_id"])
    assert (middle["status"], middle["rows_done"], middle["chunks_done"]) == ("running", 100, 1)
    assert (middle["created"], middle["updated"]) == (30, 70)

    apply_imports(stack)  # the queue's own copies of both chunks
    worker.handle(second)
    done = progress(stack, started["import_id"])
    assert (done["status"], done["rows_done"], done["chunks_done"]) == ("done", 150, 2)
    assert (done["created"], done["updated"], done["failed"]) == (30, 120, 0)
    assert len(all_contacts(stack)) == 30


def test_a_row_that_collides_with_another_contact_fails_and_is_reported(stack: Stack) -> None:
    for body in ({"email": "a@example.com"}, {"external_id": "b-1", "email": "b@example.com"}):
        assert stack.http("PUT", "/contacts", body).status_code == 201
    started = upload(stack, "external_id,email\nb-1,a@example.com\nc-1,c@example.com\n")
    stack.settle()
    done = progress(stack, started["import_id"])
    assert (done["status"], done["created"], done["updated"], done["failed"]) == ("done", 1, 0, 1)
    assert done["error_count"] == 1
    (error,) = done["errors"]
    assert (error["row"], error["line"], error["path"], error["code"]) == (1, 2, "/email", "duplicate_contact")
    b = contact(stack, external_id="b-1")
    assert b is not None and b["email"] == "b@example.com"


def test_refused_uploads_answer_in_the_error_shape_and_store_nothing(stack: Stack) -> None:
    big = "email\n" + "x" * MAX_BODY
    assert error_of(stack.http("POST", "/imports", raw=big, content_type=CSV), 413)["code"] == "body_too_large"
    wrong = error_of(stack.http("POST", "/imports", raw="email\na@example.com\n", content_type="text/plain"), 415)
    assert "text/plain" in wrong["message"]
    json_body = stack.http("POST", "/imports", {"email": "a@example.com"})
    assert json_body.status_code == 415
    many = "email\n" + "a@example.com\n" * (MAX_ROWS + 1)
    assert error_of(stack.http("POST", "/imports", raw=many, content_type=CSV), 413)["code"] == "too_many_rows"
    assert error_of(stack.http("POST", "/imports", raw="", content_type=CSV), 422)["code"] == "empty_file"
    assert error_of(stack.http("POST", "/imports", raw="email\n\n", content_type=CSV), 422)["code"] == "empty_file"
    assert error_of(stack.http("POST", "/imports", raw=" \n", content_type=JSONL), 422)["code"] == "empty_file"
    no_key = error_of(stack.http("POST", "/imports", raw="first_name\nAnn\n", content_type=CSV), 422)
    assert no_key["code"] == "identifier_column_required"
    assert "email" in no_key["message"] and "external_id" in no_key["message"]
    header = error_of(
        stack.http("POST", "/imports", raw="email,shoe_size,EMAIL\na@example.com,4,\n", content_type=CSV), 422
    )
    assert header["code"] == "invalid_header"
    assert {(d["path"], d["code"]) for d in header["details"]} == {
        ("/header/1", "unknown_column"),
        ("/header/2", "duplicate_column"),
    }
    nothing = error_of(stack.http("POST", "/imports", raw="email\nnope\n", content_type=CSV), 422)
    assert nothing["code"] == "no_valid_rows"
    assert nothing["details"][0]["code"] == "invalid_email"
    latin = stack.client.http.post(
        "/imports",
        body="email\nJosé@example.com\n".encode("latin-1"),
        headers={"Content-Type": CSV, "Authorization": f"Bearer {stack.admin_key}"},
    )
    assert error_of(latin, 422)["code"] == "not_utf8"
    assert stack.http("GET", "/imports").json_body["imports"] == []
    assert queued_chunks(stack) == []
    assert all_contacts(stack) == []


def test_unknown_import_is_404_and_roles_apply(stack: Stack) -> None:
    assert error_of(stack.http("GET", "/imports/imp_" + "0" * 32), 404)["code"] == "import_not_found"
    assert error_of(stack.http("GET", "/imports/whatever"), 404)["code"] == "import_not_found"
    editor = stack.key("content_editor")
    assert stack.http("POST", "/imports", raw="email\na@example.com\n", content_type=CSV, key=editor).status_code == 403
    assert stack.http("POST", "/imports", raw="email\na@example.com\n", content_type=CSV, key=None).status_code == 401


def test_imports_are_listed_with_a_cursor(stack: Stack) -> None:
    ids = {upload(stack, f"email\nl{i}@example.com\n")["import_id"] for i in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        answer = stack.http("GET", "/imports?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert answer.status_code == 200, answer.body
        assert len(answer.json_body["imports"]) <= 2
        seen.extend(i["import_id"] for i in answer.json_body["imports"])
        cursor = answer.json_body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    assert error_of(stack.http("GET", "/imports?limit=0"), 400)["code"] == "invalid_limit"


def test_an_upload_that_stopped_half_way_is_finished_by_uploading_the_file_again(stack: Stack) -> None:
    text = "email\n" + "".join(f"h{i}@example.com\n" for i in range(120))
    import_id = import_id_for(text.encode(), "csv")
    # As left by an upload that stopped after queuing its first chunk, which the worker then applied.
    assert runtime().imports.begin(import_id, "csv", rows_total=120) is not None
    first_chunk: list[dict[str, Any]] = []
    chunker = Chunker(SimpleNamespace(send=first_chunk.append), import_id)
    for i in range(100):
        chunker.add(i + 1, i + 2, check_contact({"email": f"h{i}@example.com"}, {}, phone_region="NL", now=NOW))
    chunker.flush()
    handlers._import_worker().handle(first_chunk[0])
    stalled = progress(stack, import_id)
    assert (stalled["status"], stalled["rows_done"], stalled["percent"]) == ("receiving", 100, 83)

    resumed = upload(stack, text)

    assert resumed["import_id"] == import_id
    assert (resumed["status"], resumed["rows_valid"], resumed["chunks"]) == ("running", 120, 2)
    apply_imports(stack)  # the first chunk again (skipped) and the second
    done = progress(stack, import_id)
    assert (done["status"], done["rows_done"], done["created"], done["updated"]) == ("done", 120, 120, 0)
    assert len(all_contacts(stack)) == 120


def test_chunks_applied_before_the_upload_finished_queuing_still_complete_the_import(stack: Stack) -> None:
    imports = runtime().imports
    ids = ("imp_" + "a" * 32, "imp_" + "b" * 32)
    for import_id in ids:
        imports.begin(import_id, "jsonl", rows_total=3)
        # The worker is faster than the upload: a chunk lands while the import is still `receiving`.
        early = imports.count_chunk(import_id, 1, created=2, updated=0, failed=0, errors=[])
        assert early is not None and early.status == "receiving"
    late_error = {"row": 3, "line": 3, "path": "/email", "code": "duplicate_contact", "message": "taken"}
    upload_error = {"row": 2, "line": 2, "path": "/email", "code": "invalid_email", "message": "no"}

    # All chunks done by the time the upload records its totals: the upload finishes the import.
    imports.queued(ids[0], rows_total=3, rows_valid=2, chunks=1, errors=[upload_error], error_count=1)
    first = progress(stack, ids[0])
    assert (first["status"], first["rows_done"], first["created"], first["percent"]) == ("done", 2, 2, 100)
    assert (first["rows_invalid"], first["error_count"], first["errors"]) == (1, 1, [upload_error])

    # One chunk still to come: it finishes the import, and its errors follow the upload's.
    imports.queued(ids[1], rows_total=3, rows_valid=3, chunks=2, errors=[upload_error], error_count=1)
    assert progress(stack, ids[1])["status"] == "running"
    imports.count_chunk(ids[1], 3, created=0, updated=0, failed=1, errors=[late_error])
    second = progress(stack, ids[1])
    assert (second["status"], second["rows_done"], second["failed"], second["error_count"]) == ("done", 3, 1, 2)
    assert second["errors"] == [upload_error, late_error]


def test_a_spreadsheet_export_with_semicolons_a_bom_and_a_cell_over_two_lines(stack: Stack) -> None:
    text = (
        "\ufeffEmail;first_name;tags;\r\n"
        'ann@example.com;"Ann\r\nMarie";"x; y";\r\n'
        "bob@example.com;Bob;;;extra\r\n"
        "cy@example.com;Cy;z;\r\n"
    )
    started = upload(stack, text)
    assert (started["rows_total"], started["rows_valid"]) == (3, 2)
    (error,) = started["errors"]
    assert (error["row"], error["line"], error["code"]) == (2, 4, "too_many_cells")
    apply_imports(stack)
    ann = contact(stack, email="ann@example.com")
    assert ann is not None and ann["first_name"] == "Ann\r\nMarie" and ann["tags"] == ["x", "y"]
    cy = contact(stack, email="cy@example.com")
    assert cy is not None and cy["tags"] == ["z"]


COLUMNS = ["external_id", "phone", "first_name", "language", "tags", "consent_email", "consent_sms_at"]
EMAILS = st.integers(0, 30).map(lambda n: f"p{n}@example.com")
CELLS = st.one_of(
    st.sampled_from(["B@Example.com", "+31612345678", "nl", "granted", "2024-01-01", "x;y", ""]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.text(alphabet=',;"\r\n\t \x00é', max_size=6),
)
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.lists(st.text(max_size=4)))
LINES = st.one_of(
    st.fixed_dictionaries(
        {"email": EMAILS},
        optional={"first_name": st.text(max_size=8), "tags": st.lists(st.text(max_size=5), max_size=3), "phone": CELLS},
    ),
    st.dictionaries(st.sampled_from([*COLUMNS, "email", "fields", "consent", "lists"]), JSON_VALUES, max_size=4),
    st.text(max_size=10),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    header=st.lists(st.sampled_from([*COLUMNS, "shoe_size"]), unique=True, max_size=4),
    rows=st.lists(st.tuples(st.one_of(EMAILS, CELLS), st.lists(CELLS, max_size=5)), max_size=6),
    lines=st.lists(LINES, max_size=5),
)
def test_any_file_gets_a_documented_answer(
    stack: Stack, header: list[str], rows: list[tuple[str, list[str]]], lines: list[Any]
) -> None:
    csv_text = ",".join(["email", *header]) + "\n" + "".join(",".join([first, *rest]) + "\n" for first, rest in rows)
    jsonl_text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
    for text, content_type in ((csv_text, CSV), (jsonl_text, JSONL)):
        answer = stack.http("POST", "/imports", raw=text, content_type=content_type)
        assert answer.status_code in (200, 202, 413, 422), (answer.status_code, answer.body)
        if answer.status_code >= 400:
            error_of(answer, answer.status_code)
            continue
        got = answer.json_body
        assert got["rows_valid"] + got["rows_invalid"] == got["rows_total"] > 0
        assert len(got["errors"]) <= 100 and got["error_count"] >= got["rows_invalid"]
    apply_imports(stack)
