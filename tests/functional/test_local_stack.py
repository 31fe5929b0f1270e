"""`make run`'s stack, started as a user would, driven over HTTP like the README's curl walkthrough.

Marketer routes take the development admin key the stack prints at start (and writes to
`<local data>/admin-key`); the gateway answers a missing or wrong key, and an unknown route, in the
error shape of every other answer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(base: str, method: str, path: str, body: Any = None, form: str | None = None, key: str | None = None) -> Any:
    data, headers = None, {"Content-Type": "application/json"}
    if form is not None:
        data, headers["Content-Type"] = form.encode(), "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def refused(base: str, method: str, path: str, key: str | None = None) -> tuple[int, Any]:
    """The status and JSON body of a request the stack refuses."""
    with pytest.raises(urllib.error.HTTPError) as error:
        call(base, method, path, key=key)
    return error.value.code, json.loads(error.value.read())


@dataclass(frozen=True)
class Local:
    base: str
    data: Path
    key: str  # the development admin key


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[Local]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOE_", "MOTO_"))}
    env.update(FLOE_PORT=str(port), FLOE_LOCAL_DATA=str(tmp_path), FLOE_TIME_SCALE="1e-9")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(base, "GET", "/health") == {"status": "ok"}:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the local stack did not start:\n{proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.2)
        key = (tmp_path / "admin-key").read_text().strip()
        yield Local(base, tmp_path, key)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Floe stopped." in out
    # The metrics went to their file, not to the console.
    assert '"_aws"' not in out
    # The banner shows the key, with a request that uses it.
    assert f"Authorization: Bearer {key}" in out


def test_the_readme_walkthrough_runs_locally(local_stack: Local) -> None:
    base, data, key = local_stack.base, local_stack.data, local_stack.key
    call(base, "POST", "/forms", {"key": "newsletter", "name": "Newsletter sign-up"}, key=key)
    flow = call(base, "POST", "/flows", json.loads((ROOT / "docs/examples/welcome.json").read_text()), key=key)
    assert call(base, "POST", f"/flows/{flow['id']}/activate", key=key)["status"] == "active"
    answer = call(
        base,
        "POST",
        "/forms/newsletter/submissions",
        form="email=sam%40example.com&first_name=Sam&phone=%2B31612345678",
    )
    assert answer["flows"] == [flow["id"]]

    deadline = time.monotonic() + 45
    participants: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        participants = call(base, "GET", f"/flows/{flow['id']}/participants", key=key)["participants"]
        if participants and participants[0]["status"] == "completed":
            break
        time.sleep(0.3)
    assert participants[0]["status"] == "completed", participants
    deadline = time.monotonic() + 5
    while not (data / "sms.log").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    emails = sorted((data / "outbox").glob("*.eml"))
    assert len(emails) == 1
    assert "Subject: Welcome, Sam!" in emails[0].read_text()
    assert "+31612345678 Hi Sam, did you see our welcome email?" in (data / "sms.log").read_text()
    # The metrics a deployment publishes to CloudWatch, one EMF document a line.
    published = [json.loads(line) for line in (data / "metrics.log").read_text().splitlines()]
    sends = {(d["channel"], d["outcome"]) for d in published if "Sends" in d}
    assert sends == {("email", "sent"), ("sms", "sent")}
    assert {d["tenant"] for d in published} == {"local"}

    # Contacts and segments: the segment index follows the contacts' change stream, pumped by the stack.
    ann = call(
        base, "POST", "/contacts", {"email": "ann@example.com", "first_name": "Ann", "language": "nl", "tags": ["vip"]},
        key=key,
    )  # fmt: skip
    condition = {
        "type": "all",
        "conditions": [{"type": "tag", "tag": "vip"}, {"type": "field", "field": "language", "value": "nl"}],
    }
    segment = call(base, "POST", "/segments", {"name": "Dutch VIPs", "condition": condition}, key=key)
    deadline = time.monotonic() + 20
    count: dict[str, Any] = {}
    while time.monotonic() < deadline:
        count = call(base, "GET", f"/segments/{segment['segment_id']}/count", key=key)
        if count["count"] == 1:
            break
        time.sleep(0.3)
    assert count["count"] == 1 and count["served_by"] == "index", count
    members = call(base, "GET", f"/segments/{segment['segment_id']}/contacts", key=key)["contacts"]
    assert [m["contact_id"] for m in members] == [ann["contact_id"]]


def test_marketer_routes_need_a_valid_key_and_unknown_routes_are_404(local_stack: Local) -> None:
    base, key = local_stack.base, local_stack.key
    for sent in (None, "floe_000000000000_not-a-real-secret", "not a key at all"):
        status, body = refused(base, "GET", "/flows", key=sent)
        assert status == 401, sent
        assert body["error"]["code"] == "unauthorized" and body["error"]["details"] == [], sent
    status, body = refused(base, "GET", "/no/such/route", key=key)
    assert status == 404 and body["error"]["code"] == "not_found"
    # The public routes need no key.
    assert call(base, "GET", "/health") == {"status": "ok"}
    # A key made with the admin key works at once, within its role; once revoked it is refused.
    made = call(base, "POST", "/keys", {"name": "editor", "role": "content_editor"}, key=key)
    assert call(base, "GET", "/flows", key=made["key"])["flows"] == []
    status, body = refused(base, "POST", "/flows/fl_none/activate", key=made["key"])
    assert status == 403 and body["error"]["code"] == "forbidden"
    call(base, "DELETE", f"/keys/{made['key_id']}", key=key)
    assert refused(base, "GET", "/flows", key=made["key"])[0] == 401
