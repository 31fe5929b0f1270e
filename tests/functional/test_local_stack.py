"""`make run`'s stack, started as a user would, driven over HTTP like the README's curl walkthrough."""

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
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(base: str, method: str, path: str, body: Any = None, form: str | None = None) -> Any:
    data, ctype = None, "application/json"
    if form is not None:
        data, ctype = form.encode(), "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
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
        yield base, tmp_path
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Floe stopped." in out


def test_the_readme_walkthrough_runs_locally(local_stack: tuple[str, Path]) -> None:
    base, data = local_stack
    call(base, "POST", "/forms", {"key": "newsletter", "name": "Newsletter sign-up"})
    flow = call(base, "POST", "/flows", json.loads((ROOT / "docs/examples/welcome.json").read_text()))
    assert call(base, "POST", f"/flows/{flow['id']}/activate")["status"] == "active"
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
        participants = call(base, "GET", f"/flows/{flow['id']}/participants")["participants"]
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
