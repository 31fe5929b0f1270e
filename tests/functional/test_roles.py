"""The role matrix, walked whole, and API keys: authentication, creation, listing and revocation.

For every declared operation that needs a permission and each role: a role without the permission
gets 403 in the error shape and nothing in the stack changes (every table, queue and state machine
is compared before and after); a role holding it is let through. A missing, malformed, unknown,
wrongly signed or revoked key gets 401. The expected rights are written out here, from the issue's
table, independently of `chalicelib.access`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import boto3
import pytest

from chalicelib.api.registry import OPERATIONS, Operation
from chalicelib.config import settings
from tests.functional.conftest import REGION, STACK_ENV, Stack

ROLES = ("admin", "flow_admin", "content_editor")
EVERYONE = frozenset(ROLES)
BUILDERS = frozenset({"admin", "flow_admin"})

# Who may do what, as the issue states it (plus contacts, and keys for the admin alone).
EXPECTED: dict[str, frozenset[str]] = {
    "flows.view": EVERYONE,  # view flows
    "content.edit": EVERYONE,  # create/edit flow content: emails, SMS texts, forms, templates
    "content.delete": BUILDERS,  # delete flow content
    "flows.edit": BUILDERS,  # create/edit flows
    "flows.run": BUILDERS,  # run/pause/end flows
    "keys.manage": frozenset({"admin"}),
    "contacts.view": EVERYONE,
    "contacts.edit": BUILDERS,
}

# Operations named by the issue's table, and the permission each must need.
TABLE: dict[tuple[str, str], str] = {
    ("GET", "/flows"): "flows.view",
    ("GET", "/flows/{flow_id}"): "flows.view",
    ("GET", "/flows/{flow_id}/versions"): "flows.view",
    ("GET", "/flows/{flow_id}/participants"): "flows.view",
    ("GET", "/flows/{flow_id}/participants/{participant_id}"): "flows.view",
    ("GET", "/forms"): "flows.view",
    ("GET", "/forms/{form_key}"): "flows.view",
    ("GET", "/templates"): "flows.view",
    ("GET", "/templates/{template_id}"): "flows.view",
    ("POST", "/forms"): "content.edit",
    ("PUT", "/forms/{form_key}"): "content.edit",
    ("POST", "/templates"): "content.edit",
    ("PUT", "/templates/{template_id}"): "content.edit",
    ("DELETE", "/forms/{form_key}"): "content.delete",
    ("DELETE", "/templates/{template_id}"): "content.delete",
    ("POST", "/flows"): "flows.edit",
    ("PUT", "/flows/{flow_id}"): "flows.edit",
    ("POST", "/flows/{flow_id}/activate"): "flows.run",
    ("POST", "/flows/{flow_id}/pause"): "flows.run",
    ("POST", "/flows/{flow_id}/resume"): "flows.run",
    ("POST", "/flows/{flow_id}/end"): "flows.run",
    ("POST", "/flows/{flow_id}/enrollments"): "flows.run",
    ("POST", "/keys"): "keys.manage",
    ("GET", "/keys"): "keys.manage",
    ("DELETE", "/keys/{key_id}"): "keys.manage",
}

FLOW = {
    "name": "Welcome",
    "trigger": {"type": "form_submitted", "form": "newsletter"},
    "start_at": "hello",
    "steps": [
        {"id": "hello", "type": "send_email", "subject": "Hi", "html": "<p>Hi</p>", "next": "done"},
        {"id": "done", "type": "end"},
    ],
}

# Requests that would change something if they were let through.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/flows"): FLOW,
    ("PUT", "/flows/{flow_id}"): {**FLOW, "name": "Renamed"},
    ("POST", "/flows/{flow_id}/enrollments"): {"emails": ["ada@example.com"]},
    ("POST", "/forms"): {"key": "another", "name": "Another"},
    ("PUT", "/forms/{form_key}"): {"name": "Renamed", "owner_email": "sales@example.com"},
    ("POST", "/templates"): {"channel": "sms", "name": "Hello", "text": "Hello {{ contact.first_name }}"},
    ("PUT", "/templates/{template_id}"): {"channel": "sms", "name": "Changed", "text": "Changed"},
    ("POST", "/keys"): {"name": "intruder", "role": "admin"},
    ("POST", "/contacts"): {"email": "new@example.com"},
    ("PUT", "/contacts"): {"email": "ada@example.com", "first_name": "Changed"},
    ("PATCH", "/contacts/{contact_id}"): {"first_name": "Changed"},
    ("POST", "/fields"): {"name": "plan", "type": "text"},
}


def error_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.body)
    error = answer.json_body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["message"]
    return dict(error)


def world(stack: Stack) -> dict[str, str]:
    """A form, a flow triggered by it with a participant, a contact, a template and a spare key."""

    def created(path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        answer = stack.http("POST", path, body)
        assert answer.status_code == status, answer.body
        return dict(answer.json_body)

    created("/forms", {"key": "newsletter", "name": "Newsletter"})
    flow = created("/flows", {**FLOW, "trigger": {"type": "manual"}})
    created(f"/flows/{flow['id']}/activate", {}, 200)
    contact = created("/contacts", {"email": "ada@example.com", "first_name": "Ada"})
    enrolled = created(f"/flows/{flow['id']}/enrollments", {"contact_ids": [contact["contact_id"]]}, 200)
    template = created("/templates", {"channel": "email", "name": "Hi", "subject": "Hi", "html": "<p>Hi</p>"})
    spare = created("/keys", {"name": "spare", "role": "content_editor"})
    participant_id = str(enrolled["results"][0]["participant_id"])
    # Let the participant finish and every stream settle: from here on, only a request changes the stack.
    stack.run_until(lambda: stack.participant(flow["id"], participant_id)["status"] == "completed")
    stack.settle()
    return {
        "flow_id": flow["id"],
        "form_key": "newsletter",
        "contact_id": contact["contact_id"],
        "participant_id": participant_id,
        "template_id": template["id"],
        "key_id": spare["key_id"],
    }


def path_of(op: Operation, ids: dict[str, str]) -> str:
    return re.sub(r"{([^}]+)}", lambda m: ids.get(m.group(1), "missing-id"), op.path)


def state(stack: Stack) -> dict[str, Any]:
    """Everything stored: every item of every table, what waits in every queue, every state machine."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    tables = {}
    for name in dynamodb.list_tables()["TableNames"]:
        items = dynamodb.get_paginator("scan").paginate(TableName=name, ConsistentRead=True).build_full_result()
        tables[name] = sorted(json.dumps(item, sort_keys=True) for item in items["Items"])
    queues = {
        url: stack.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        for url in stack.sqs.list_queues().get("QueueUrls", [])
    }
    machines = sorted(m["stateMachineArn"] for m in stack.sfn.list_state_machines()["stateMachines"])
    return {"tables": tables, "queues": queues, "machines": machines, "executions": len(stack.executions())}


def protected() -> list[Operation]:
    # Deletions last, so the operations before them find what they act on.
    ops = [op for op in OPERATIONS.values() if op.permission is not None]
    return sorted(ops, key=lambda op: (op.method == "DELETE", op.path, op.method))


@pytest.fixture(scope="module")
def declared() -> dict[tuple[str, str], Operation]:
    """Every operation, as declared when the app is imported."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in STACK_ENV.items():
            env.setenv(name, value)
        settings.cache_clear()
        import app  # noqa: F401  (declares every route)
    settings.cache_clear()
    return OPERATIONS


def test_the_issue_table_names_the_permission_of_each_operation(declared: dict[tuple[str, str], Operation]) -> None:
    for key, permission in TABLE.items():
        assert key in declared, key
        assert declared[key].permission == permission, key
    # Every permission an operation needs has its expected holders written out above.
    assert {op.permission for op in declared.values() if op.permission} <= set(EXPECTED)


def test_each_role_is_refused_exactly_what_it_lacks_and_a_refusal_changes_nothing(stack: Stack) -> None:
    ids = world(stack)
    keys = {"admin": stack.admin_key, **{role: stack.key(role, role) for role in ROLES if role != "admin"}}
    before = state(stack)
    refused = 0
    for op in protected():
        assert op.permission is not None
        for role in sorted(EVERYONE - EXPECTED[op.permission]):
            answer = stack.http(op.method, path_of(op, ids), BODIES.get(op.key), key=keys[role])
            assert error_of(answer, 403)["code"] == "forbidden", (role, op.key)
            if op.method != "GET":
                assert state(stack) == before, f"{role} {op.method} {op.path} changed something"
            refused += 1
    assert refused >= 20
    for op in protected():
        assert op.permission is not None
        for role in sorted(EXPECTED[op.permission]):
            answer = stack.http(op.method, path_of(op, ids), BODIES.get(op.key), key=keys[role])
            assert answer.status_code not in (401, 403), (role, op.key, answer.body)
            assert answer.status_code < 500, (role, op.key, answer.body)


def test_without_a_valid_key_every_marketer_route_is_401(stack: Stack) -> None:
    ids = world(stack)
    key_id = ids["key_id"]
    admin_id = stack.admin_key.split("_")[1]
    not_keys = [
        None,  # no Authorization header at all
        "nonsense",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer floe_",
        f"Bearer floe_{key_id}",
        "Bearer floe_000000000000_" + "x" * 43,  # unknown key id
        f"Bearer floe_{admin_id}_" + "x" * 43,  # the admin's key id with a wrong secret
        "Bearer " + stack.admin_key + "x",
    ]
    for op in protected():
        for presented in not_keys:
            headers = {"Authorization": presented} if presented is not None else {}
            answer = stack.http(op.method, path_of(op, ids), BODIES.get(op.key), key=None, headers=headers)
            assert error_of(answer, 401)["code"] == "unauthorized", (presented, op.key)


def test_a_key_is_shown_once_listed_without_its_secret_and_dies_when_revoked(stack: Stack) -> None:
    created = stack.http("POST", "/keys", {"name": "Agency", "role": "content_editor"})
    assert created.status_code == 201, created.body
    new = created.json_body
    assert (new["name"], new["role"], new["revoked_at"]) == ("Agency", "content_editor", None)
    key = new["key"]
    assert key.startswith(f"floe_{new['key_id']}_")
    secret = key.split("_", 2)[2]
    assert len(secret) >= 40

    listed = stack.http("GET", "/keys")
    assert listed.status_code == 200
    text = json.dumps(listed.json_body)
    assert secret not in text
    assert hashlib.sha256(secret.encode()).hexdigest() not in text
    mine = [k for k in listed.json_body["keys"] if k["key_id"] == new["key_id"]]
    assert mine == [{k: v for k, v in new.items() if k != "key"}]

    # Only the hash is stored.
    stored = boto3.client("dynamodb", region_name=REGION).scan(TableName="floe-test-api-keys")["Items"]
    assert secret not in json.dumps(stored)

    # The key works for what its role may do, and not for the rest.
    assert stack.http("GET", "/flows", key=key).status_code == 200
    assert error_of(stack.http("GET", "/keys", key=key), 403)["code"] == "forbidden"

    revoked = stack.http("DELETE", f"/keys/{new['key_id']}")
    assert revoked.status_code == 200, revoked.body
    assert revoked.json_body["revoked_at"]
    assert "key" not in revoked.json_body
    assert error_of(stack.http("GET", "/flows", key=key), 401)["code"] == "unauthorized"
    # Revoking again changes nothing; an unknown key is not found.
    again = stack.http("DELETE", f"/keys/{new['key_id']}")
    assert again.json_body["revoked_at"] == revoked.json_body["revoked_at"]
    assert error_of(stack.http("DELETE", "/keys/000000000000"), 404)["code"] == "key_not_found"


def test_a_bad_key_request_is_refused_with_every_problem(stack: Stack) -> None:
    before = stack.http("GET", "/keys").json_body["keys"]
    error = error_of(stack.http("POST", "/keys", {"name": " ", "role": "root", "scope": "all"}), 422)
    assert {d["path"] for d in error["details"]} == {"/name", "/role", "/scope"}
    assert stack.http("GET", "/keys").json_body["keys"] == before
