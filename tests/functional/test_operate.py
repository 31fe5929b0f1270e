"""The operator's runbook, run against the whole stack in moto: every command docs/runbook.md names.

A step whose worker kept failing lands in the dead-letter queue; `stuck` finds its participant,
`dlq-status` shows the queue, `redrive` moves the message back exactly once and the flow goes on. A
participant whose execution was stopped from outside is found and ended; one whose execution never
started is started by enrolling the contact again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib import bootstrap, handlers
from chalicelib.admin import _parser, main
from chalicelib.config import settings
from chalicelib.local.provision import MAX_RECEIVES
from chalicelib.local.pumps import drain
from chalicelib.storage.models import ParticipantModel
from tests.functional.conftest import Stack
from tests.functional.test_lifecycle import finished, new_flow, new_form, submit

ROOT = Path(__file__).resolve().parents[2]


def admin(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run an admin command for the test stack; its exit code, its JSON output and its errors."""
    capsys.readouterr()
    code = main([*argv, "--tenant", "test"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def depth(stack: Stack, url: str) -> int:
    attrs = stack.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def dlq_url(stack: Stack, queue: str) -> str:
    return str(stack.sqs.get_queue_url(QueueName=f"floe-test-{queue}-dlq")["QueueUrl"])


def wait_for_message(stack: Stack, url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while depth(stack, url) == 0:
        assert time.monotonic() < deadline, "no message arrived"
        time.sleep(0.05)


def crash_until_dead_lettered(stack: Stack, url: str, dead_letter_url: str) -> None:
    """A worker that takes the message and dies, as often as the redrive policy allows: SQS dead-letters it."""
    for _ in range(MAX_RECEIVES + 1):
        stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert depth(stack, url) == 0
    assert depth(stack, dead_letter_url) == 1


def execution_closed(stack: Stack, arn: str, timeout: float = 10) -> str:
    """The status of an execution once it is no longer running (moto closes a stopped one a moment later)."""
    deadline = time.monotonic() + timeout
    while (status := str(stack.sfn.describe_execution(executionArn=arn)["status"])) == "RUNNING":
        assert time.monotonic() < deadline, "the execution is still running"
        time.sleep(0.05)
    return status


def one_email(form: str) -> dict[str, Any]:
    return {
        "name": "One email",
        "trigger": {"type": "form_submitted", "form": form},
        "start_at": "hello",
        "steps": [
            {"id": "hello", "type": "send_email", "subject": "Hello", "html": "<p>Hello.</p>", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }


def test_a_dead_lettered_step_is_found_redriven_once_and_completes(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    new_form(stack, "hello")
    flow_id = new_flow(stack, one_email("hello"))
    cid = submit(stack, "hello", email="anna@example.com")["contact_id"]
    pid = f"{cid}.1"
    drain(stack.sqs, stack.enroll_url, handlers.enrollments)
    wait_for_message(stack, stack.steps_url)
    steps_dlq = dlq_url(stack, "steps")
    crash_until_dead_lettered(stack, stack.steps_url, steps_dlq)

    # The participant has not moved since; its execution waits on the step's task token.
    code, found, _ = admin(capsys, "stuck", "--older-than", "0s")
    assert code == 0
    assert found["open_participants"] == 1
    [stuck] = found["stuck"]
    assert (stuck["flow_id"], stuck["participant_id"], stuck["status"]) == (flow_id, pid, "active")
    assert (stuck["diagnosis"], stuck["execution_status"], stuck["current_step"]) == (
        "task_outstanding",
        "RUNNING",
        "hello",
    )
    assert "redrive steps" in stuck["action"]
    assert stuck["state"] == "hello"
    # Not idle for an hour yet: the default threshold lists nobody.
    assert admin(capsys, "stuck", "--flow", flow_id, "--region", "eu-west-1")[1]["stuck"] == []
    # The API says the same: active at the step, and which execution to look at in the console.
    listed = stack.http("GET", f"/flows/{flow_id}/participants?status=active").json_body["participants"]
    assert [(p["participant_id"], p["current_step"]) for p in listed] == [(pid, "hello")]
    detail = stack.participant(flow_id, pid)
    assert detail["execution_arn"].endswith(f":{flow_id}-v1-{cid}-e1")
    assert [t["event"] for t in detail["trace"]] == ["entered"]

    code, status, _ = admin(capsys, "dlq-status")
    assert code == 0
    queues = {q["queue"]: q for q in status["dead_letter_queues"]}
    assert queues["steps"] == {
        "queue": "steps", "dead_letter_queue": "floe-test-steps-dlq", "exists": True, "messages": 1, "in_flight": 0,
        "redrivable": True,
    }  # fmt: skip
    assert queues["enrollments"]["messages"] == queues["imports"]["messages"] == 0
    assert queues["changes"] == {
        "queue": "changes", "dead_letter_queue": "floe-test-changes-dlq", "exists": True, "messages": 0,
        "in_flight": 0, "redrivable": False,
    }  # fmt: skip

    # A dry run shows which participant and step would move, and moves nothing.
    code, dry, _ = admin(capsys, "redrive", "steps", "--dry-run")
    assert code == 0
    assert dry["would_move"] == 1 and dry["dry_run"] is True
    assert dry["sample"] == [
        {"kind": "step", "flow_id": flow_id, "participant_id": pid, "contact_id": cid, "step": "hello"}
    ]
    assert depth(stack, steps_dlq) == 1 and depth(stack, stack.steps_url) == 0

    code, moved, _ = admin(capsys, "redrive", "steps")
    assert code == 0
    assert moved == {
        "queue": "steps", "from": "floe-test-steps-dlq", "to": "floe-test-steps", "dry_run": False, "moved": 1,
        "failed": 0, "not_deleted": 0, "left": 0,
    }  # fmt: skip
    assert depth(stack, steps_dlq) == 0 and depth(stack, stack.steps_url) == 1
    # Run again, it finds nothing more to move: the message moved exactly once.
    assert admin(capsys, "redrive", "steps")[1]["moved"] == 0

    stack.run_until(lambda: finished(stack, flow_id, pid))
    assert stack.participant(flow_id, pid)["status"] == "completed"
    assert [m["Subject"] for m in stack.emails()] == ["Hello"]
    assert admin(capsys, "stuck", "--older-than", "0s")[1] == {
        "older_than_seconds": 0, "open_participants": 0, "stuck": []
    }  # fmt: skip


def test_redriven_enrollments_keep_their_attributes_and_enroll(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    new_form(stack, "hello")
    flow_id = new_flow(stack, one_email("hello"))
    dead = dlq_url(stack, "enrollments")
    contacts = []
    for name in ("bram", "cleo"):
        made = stack.http("POST", "/contacts", {"email": f"{name}@example.com"})
        assert made.status_code == 201, made.body
        contacts.append(made.json_body["contact_id"])
        stack.sqs.send_message(
            QueueUrl=dead,
            MessageBody=json.dumps(
                {"type": "form_submitted", "form": "hello", "contact_id": made.json_body["contact_id"]}
            ),
            MessageAttributes={"origin": {"DataType": "String", "StringValue": name}},
        )

    code, moved, _ = admin(capsys, "redrive", "enrollments", "--max", "1")
    assert code == 0 and (moved["moved"], moved["left"]) == (1, 1)
    back = stack.sqs.receive_message(
        QueueUrl=stack.enroll_url, MessageAttributeNames=["All"], MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    assert len(back) == 1
    first = json.loads(back[0]["Body"])["contact_id"]
    assert back[0]["MessageAttributes"]["origin"]["StringValue"] == ("bram" if first == contacts[0] else "cleo")

    assert admin(capsys, "redrive", "enrollments")[1]["moved"] == 1
    assert depth(stack, dead) == 0
    stack.run_until(lambda: all(finished(stack, flow_id, f"{c}.1") for c in contacts))
    assert sorted(m["To"] for m in stack.emails()) == ["bram@example.com", "cleo@example.com"]


def email_then_wait(form: str) -> dict[str, Any]:
    return {
        "name": "Email, then a long wait",
        "trigger": {"type": "form_submitted", "form": form},
        "start_at": "hello",
        "steps": [
            {"id": "hello", "type": "send_email", "subject": "Hello", "html": "<p>Hello.</p>", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": {"days": 1}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }


def test_a_step_dead_lettered_after_a_wait_is_told_from_the_wait(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    new_form(stack, "waits")
    flow_id = new_flow(stack, email_then_wait("waits"))
    pid = f"{submit(stack, 'waits', email='gus@example.com')['contact_id']}.1"
    stack.run_until(lambda: stack.participant(flow_id, pid)["status"] == "waiting")
    # The wait (a second here) ends; the message of the step after it fails until it is dead-lettered.
    wait_for_message(stack, stack.steps_url)
    crash_until_dead_lettered(stack, stack.steps_url, dlq_url(stack, "steps"))

    [stuck] = admin(capsys, "stuck", "--older-than", "0s")[1]["stuck"]
    # Still `waiting` at the wait for the API, but the execution is at the next step, unanswered.
    assert (stuck["status"], stuck["current_step"], stuck["state"]) == ("waiting", "pause", "done")
    assert stuck["diagnosis"] == "task_outstanding"

    assert admin(capsys, "redrive", "steps")[1]["moved"] == 1
    stack.run_until(lambda: finished(stack, flow_id, pid))
    assert stack.participant(flow_id, pid)["status"] == "completed"
    assert admin(capsys, "stuck", "--older-than", "0s")[1]["stuck"] == []


def test_a_participant_whose_execution_was_stopped_is_found_and_ended(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A day lasts a minute here: the participants wait through the whole test.
    monkeypatch.setenv("FLOE_TIME_SCALE", str(60 / 86400))
    settings.cache_clear()
    bootstrap.runtime.cache_clear()
    new_form(stack, "waits")
    flow_id = new_flow(stack, email_then_wait("waits"))
    pids = [f"{submit(stack, 'waits', email=f'{n}@example.com')['contact_id']}.1" for n in ("dora", "emil")]
    stack.run_until(lambda: all(stack.participant(flow_id, p)["status"] == "waiting" for p in pids))
    # Waiting is healthy, however long it lasts.
    assert admin(capsys, "stuck", "--older-than", "0s")[1]["stuck"] == []

    # Someone stops Dora's execution in the console: nothing will ever close her participant.
    dora, emil = (stack.participant(flow_id, p) for p in pids)
    stack.sfn.stop_execution(executionArn=dora["execution_arn"], error="Manual", cause="console")
    assert execution_closed(stack, dora["execution_arn"]) == "ABORTED"
    code, found, _ = admin(capsys, "stuck", "--older-than", "0s")
    assert code == 0
    [stuck] = found["stuck"]
    assert (stuck["participant_id"], stuck["status"], stuck["current_step"]) == (pids[0], "waiting", "pause")
    assert (stuck["diagnosis"], stuck["execution_status"]) == ("execution_closed", "ABORTED")
    assert stuck["action"] == f"python -m chalicelib.admin end-participant {flow_id} {pids[0]}"

    code, ended, _ = admin(capsys, "end-participant", flow_id, pids[0], "--why", "execution stopped by hand")
    assert code == 0
    assert ended == {
        "flow_id": flow_id, "participant_id": pids[0], "ended": True, "status": "exited", "reason": "ended_by_operator",
        "execution_stopped": False,
    }  # fmt: skip
    trace = stack.participant(flow_id, pids[0])["trace"]
    assert (trace[-1]["event"], trace[-1]["step"], trace[-1]["detail"]) == (
        "exited",
        "pause",
        "execution stopped by hand",
    )

    # Emil is healthy but must leave: his running execution is stopped too.
    code, ended, _ = admin(capsys, "end-participant", flow_id, pids[1])
    assert code == 0 and ended["ended"] is True and ended["execution_stopped"] is True
    assert execution_closed(stack, emil["execution_arn"]) == "ABORTED"
    assert admin(capsys, "stuck", "--older-than", "0s")[1] == {
        "older_than_seconds": 0, "open_participants": 0, "stuck": []
    }  # fmt: skip

    # Ending again changes nothing; an unknown participant is an error.
    code, again, _ = admin(capsys, "end-participant", flow_id, pids[1])
    assert code == 0 and again["ended"] is False and again["status"] == "exited"
    code, _, err = admin(capsys, "end-participant", flow_id, "nobody.1")
    assert code == 1 and "nobody.1" in err
    assert len(stack.emails()) == 2


def test_a_participant_whose_execution_never_started_is_started_by_enrolling_again(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    new_form(stack, "hello")
    flow_id = new_flow(stack, one_email("hello"))
    made = stack.http("POST", "/contacts", {"email": "fay@example.com"})
    cid = made.json_body["contact_id"]
    # What an enrollment that stopped between its two writes leaves behind: a participant, no execution.
    now = dt.datetime.now(dt.UTC)
    ParticipantModel(
        flow_id=flow_id, participant_id=f"{cid}.1", contact_id=cid, entry=1, version=1,
        execution_name=f"{flow_id}-v1-{cid}-e1", status="starting", current_step="hello", entered_at=now,
        updated_at=now, trace=[],
    ).save()  # fmt: skip

    [stuck] = admin(capsys, "stuck", "--older-than", "0s")[1]["stuck"]
    assert (stuck["diagnosis"], stuck["execution_arn"]) == ("not_started", None)
    assert "enrollments" in stuck["action"]

    again = stack.http("POST", f"/flows/{flow_id}/enrollments", {"contact_ids": [cid]})
    assert again.status_code == 200, again.body
    assert again.json_body["results"][0]["outcome"] == "already_enrolled"
    stack.run_until(lambda: finished(stack, flow_id, f"{cid}.1"))
    assert stack.participant(flow_id, f"{cid}.1")["status"] == "completed"
    assert [m["To"] for m in stack.emails()] == ["fay@example.com"]


def test_operator_mistakes_are_refused_with_a_reason(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["redrive", "steps", "--tenant", "nosuch"]) == 1
    assert "floe-nosuch-steps-dlq" in capsys.readouterr().err
    # The stack options work before the command too, as for the key commands.
    assert main(["--tenant", "test", "dlq-status"]) == 0
    assert json.loads(capsys.readouterr().out)["tenant"] == "test"
    for argv, complaint in (
        (["redrive", "changes"], "invalid choice: 'changes'"),
        (["redrive", "steps", "--max", "0"], "1 or more"),
        (["stuck", "--older-than", "soon"], "90s, 30m, 2h or 1d"),
    ):
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--tenant", "test"])
        assert exited.value.code == 2
        assert complaint in capsys.readouterr().err


def test_every_command_of_the_runbook_is_one_the_admin_tool_takes() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    commands = []
    for line in runbook.splitlines():
        # Shell comments, and the advice of `stuck` quoted in a JSON string, are not part of a command.
        for part in re.split(r";|, if [^,]*,", line.partition("  #")[0]):
            if "python -m chalicelib.admin" in part and "<" not in part:
                command = part.split("python -m chalicelib.admin", 1)[1]
                commands.append(shlex.split(command.rstrip('"') if command.count('"') % 2 else command))
    assert len(commands) >= 12
    for argv in commands:
        args = _parser().parse_args(argv)
        assert args.command in ("dlq-status", "redrive", "stuck", "end-participant", "replay-changes", "reindex"), argv
