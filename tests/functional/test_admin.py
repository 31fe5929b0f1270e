"""`python -m chalicelib.admin`: the first admin key of a deployed stack, made straight in its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.admin import main
from tests.functional.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_key_made_by_the_operator_works_on_the_api_until_revoked(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--tenant", "test", "create-key", "--role", "admin", "--name", "ops")
    assert code == 0
    made = json.loads(out)
    assert made["role"] == "admin" and made["name"] == "ops" and made["revoked_at"] is None
    assert made["key"].startswith(f"floe_{made['key_id']}_")

    listed = stack.http("GET", "/keys", key=made["key"])
    assert listed.status_code == 200, listed.body
    assert "ops" in [k["name"] for k in listed.json_body["keys"]]

    code, out, _ = run(capsys, "--tenant", "test", "list-keys")
    assert code == 0
    keys = json.loads(out)["keys"]
    assert made["key_id"] in [k["key_id"] for k in keys]
    # The secret is shown once, at creation; neither it nor its hash is listed.
    assert made["key"].rpartition("_")[2] not in out and all("key" not in k for k in keys)

    code, out, _ = run(capsys, "--tenant", "test", "revoke-key", made["key_id"])
    assert code == 0 and json.loads(out)["revoked_at"] is not None
    refused = stack.http("GET", "/keys", key=made["key"])
    assert refused.status_code == 401
    assert refused.json_body["error"]["code"] == "unauthorized"


def test_operator_mistakes_are_refused_with_a_reason(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    before = stack.http("GET", "/keys").json_body["keys"]

    code, _, err = run(capsys, "--tenant", "nosuchtenant", "create-key", "--role", "admin", "--name", "ops")
    assert code == 1 and "floe-nosuchtenant-api-keys" in err

    code, _, err = run(capsys, "--tenant", "test", "revoke-key", "000000000000")
    assert code == 1 and "000000000000" in err

    code, _, err = run(capsys, "--tenant", "test", "create-key", "--role", "admin", "--name", "   ")
    assert code == 2 and "--name" in err

    with pytest.raises(SystemExit) as exited:
        main(["--tenant", "test", "create-key", "--role", "owner", "--name", "ops"])
    assert exited.value.code == 2
    assert "invalid choice: 'owner'" in capsys.readouterr().err

    assert stack.http("GET", "/keys").json_body["keys"] == before


def test_the_command_line_explains_itself() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.admin", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for command in ("create-key", "list-keys", "revoke-key", "dlq-status", "redrive", "stuck", "end-participant"):
        assert command in done.stdout
