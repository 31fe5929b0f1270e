"""schemathesis against the app served over real HTTP: no 5xx, and every answer as /openapi.json says.

The app runs on Chalice's local server with our gateway wrapper (the same one `make run` serves),
inside the moto stack. schemathesis loads the document from the running app and sends generated
requests to every operation with the admin key: valid ones (every answer must be documented and
match its schema, and a marketer route must refuse the same request without a key), then invalid
ones (each must be refused with a 4xx, not accepted or crashed on). A pass with the ids of real
resources reaches the answers of existing flows, forms, templates, contacts and keys too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from chalice.config import Config
from chalice.local import LocalDevServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chalicelib.local.gateway import RequestHandler
from tests.functional.conftest import Stack

# Small budgets: the whole run stays within a couple of minutes on two cores.
POSITIVE_EXAMPLES = 8
NEGATIVE_EXAMPLES = 4
REAL_ID_EXAMPLES = 4

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class QuietHandler(RequestHandler):
    """Our gateway, without a log line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(stack: Stack) -> Iterator[str]:
    """The app on a free local port, over real HTTP, inside the moto stack."""
    from app import app

    server = LocalDevServer(app, Config.create(app_name="floe"), "127.0.0.1", 0, handler_cls=QuietHandler)
    thread = threading.Thread(target=server.server.serve_forever, name="api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(timeout=10)


def seed(stack: Stack) -> dict[str, str]:
    """Real resources, by the path parameter names that reach them."""

    def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = stack.http("POST", path, body)
        assert answer.status_code == 201, answer.body
        return dict(answer.json_body)

    created("/forms", {"key": "newsletter", "name": "Newsletter"})
    flow = created(
        "/flows",
        {
            "name": "Hello",
            "trigger": {"type": "manual"},
            "start_at": "hello",
            "steps": [
                {"id": "hello", "type": "send_email", "subject": "Hi", "html": "<p>Hi</p>", "next": "done"},
                {"id": "done", "type": "end"},
            ],
        },
    )
    assert stack.http("POST", f"/flows/{flow['id']}/activate").status_code == 200
    contact = created("/contacts", {"email": "ada@example.com", "first_name": "Ada"})
    enrolled = stack.http("POST", f"/flows/{flow['id']}/enrollments", {"contact_ids": [contact["contact_id"]]})
    assert enrolled.status_code == 200, enrolled.body
    template = created("/templates", {"channel": "sms", "name": "Reminder", "text": "See you {{ contact.first_name }}"})
    spare = created("/keys", {"name": "spare", "role": "content_editor"})
    return {
        "flow_id": flow["id"],
        "form_key": "newsletter",
        "contact_id": contact["contact_id"],
        "participant_id": str(enrolled.json_body["results"][0]["participant_id"]),
        "template_id": template["id"],
        "key_id": spare["key_id"],
    }


def exercise(
    operation: Any,
    strategy: Any,
    examples: int,
    call: Callable[[Any], None],
    *,
    invalid: bool = False,
) -> str | None:
    """Run `call` on `examples` generated cases; the first failure as text, or None."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        call(case)

    try:
        run()
    except Unsatisfiable as exc:
        if not invalid:
            return f"{operation.label}: no request could be generated: {exc}"
        # Nothing in this operation can be made invalid (no parameters, or free-form strings only).
        return None
    except Exception as exc:
        return f"{operation.label}: {type(exc).__name__}: {exc}"
    return None


def test_generated_requests_find_no_server_error_and_no_answer_outside_the_document(stack: Stack, served: str) -> None:
    ids = seed(stack)
    auth = {"Authorization": f"Bearer {stack.admin_key}"}
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 40

    def positive(case: Any) -> None:
        secured = bool(case.operation.definition.raw.get("security"))
        case.call_and_validate(base_url=served, headers=auth, checks=[*CHECKS, *([ignored_auth] if secured else [])])

    def negative(case: Any) -> None:
        case.call_and_validate(base_url=served, headers=auth, checks=[*CHECKS, negative_data_rejection])

    failures = []
    for operation in operations:
        failures.append(exercise(operation, operation.as_strategy(), POSITIVE_EXAMPLES, positive))
        failures.append(
            exercise(
                operation,
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
                NEGATIVE_EXAMPLES,
                negative,
                invalid=True,
            )
        )
        names = {p.name for p in operation.path_parameters}
        if names and names <= set(ids):
            real = operation.as_strategy(path_parameters={name: ids[name] for name in names})
            failures.append(exercise(operation, real, REAL_ID_EXAMPLES, positive))
    found = [f for f in failures if f]
    assert found == [], "\n\n".join(found)
