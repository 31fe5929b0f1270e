"""The metrics an operator reads in CloudWatch, from flows run through the whole stack.

The app publishes Embedded Metric Format documents (stdout in Lambda); the `stack` fixture collects
them, and `cloudwatch` adds them up the way CloudWatch does: every dimension set of a document is a
series, and a series' sum is the sum of its values over all documents.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from chalicelib import handlers, metrics
from chalicelib.config import settings
from chalicelib.local.pumps import drain
from tests.functional.conftest import Stack
from tests.functional.test_lifecycle import finished, new_flow, new_form, submit

Series = Counter[tuple[str, frozenset[tuple[str, str]]]]


def cloudwatch(documents: list[dict[str, Any]]) -> Series:
    """The sum of each metric series (name and dimension values) these EMF documents make."""
    seen: Series = Counter()
    for doc in documents:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Floe"
            # The alarms watch the `[tenant]` series: every document must feed it.
            assert directive["Dimensions"][0] == ["tenant"], directive
            for dimensions in directive["Dimensions"]:
                key = frozenset((d, str(doc[d])) for d in dimensions)
                for metric in directive["Metrics"]:
                    assert metric["Unit"] == "Count"
                    value = doc[metric["Name"]]
                    seen[(metric["Name"], key)] += sum(value) if isinstance(value, list) else value
    return seen


def total(series: Series, name: str, **dimensions: str) -> float:
    return series[(name, frozenset({"tenant": "test", **dimensions}.items()))]


def names(series: Series) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    return {key for key, value in series.items() if value}


def onboarding(form: str) -> dict[str, Any]:
    """Email, SMS and an alert to the contact's owner, one after the other."""
    return {
        "name": "Onboarding",
        "trigger": {"type": "form_submitted", "form": form},
        "reentry": {"mode": "never"},
        "start_at": "welcome",
        "steps": [
            {"id": "welcome", "type": "send_email", "subject": "Welcome", "html": "<p>Hello.</p>", "next": "text"},
            {"id": "text", "type": "send_sms", "text": "Hello from us.", "next": "alert"},
            {"id": "alert", "type": "notify", "to": "owner", "subject": "New sign-up", "text": "Call them.",
             "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }  # fmt: skip


def test_sends_skips_and_enrollments_are_counted_as_an_operator_reads_them(stack: Stack) -> None:
    new_form(stack, "signup")
    flow_id = new_flow(stack, onboarding("signup"))
    anna = submit(stack, "signup", email="anna@example.com", phone="+31612345678")["contact_id"]
    bram = submit(stack, "signup", email="bram@example.com")["contact_id"]
    stack.run_until(lambda: finished(stack, flow_id, f"{anna}.1") and finished(stack, flow_id, f"{bram}.1"))
    assert len(stack.emails()) == 2 and len(stack.sms()) == 1

    seen = cloudwatch(stack.metrics)
    assert total(seen, "Enrollments") == 2
    assert total(seen, "Enrollments", outcome="enrolled") == 2
    assert total(seen, "Sends") == 3
    assert total(seen, "Sends", channel="email", outcome="sent") == 2
    assert total(seen, "Sends", channel="sms", outcome="sent") == 1
    # Bram has no phone; nobody has an owner to alert. The reasons are short codes, not sentences.
    assert total(seen, "Skips") == 3
    assert total(seen, "Skips", channel="sms", reason="no_phone") == 1
    assert total(seen, "Skips", channel="notify", reason="no_owner") == 2
    # Nothing else: no failures, no failed records, no stray series.
    assert names(seen) == {
        ("Enrollments", frozenset({("tenant", "test")})),
        ("Enrollments", frozenset({("tenant", "test"), ("outcome", "enrolled")})),
        ("Sends", frozenset({("tenant", "test")})),
        ("Sends", frozenset({("tenant", "test"), ("channel", "email"), ("outcome", "sent")})),
        ("Sends", frozenset({("tenant", "test"), ("channel", "sms"), ("outcome", "sent")})),
        ("Skips", frozenset({("tenant", "test")})),
        ("Skips", frozenset({("tenant", "test"), ("channel", "sms"), ("reason", "no_phone")})),
        ("Skips", frozenset({("tenant", "test"), ("channel", "notify"), ("reason", "no_owner")})),
    }
    # The trace keeps the sentence a marketer reads.
    trace = stack.participant(flow_id, f"{bram}.1")["trace"]
    assert {
        "step": "text",
        "event": "skipped",
        "detail": "the contact has no valid international phone number",
    }.items() <= (next(t for t in trace if t["step"] == "text").items())

    # A manual enrollment is published when the API answers, before any worker runs.
    before = len(stack.metrics)
    answer = stack.http("POST", f"/flows/{flow_id}/enrollments", {"contact_ids": [anna, "nobody"]})
    assert answer.status_code == 200, answer.body
    assert [r["outcome"] for r in answer.json_body["results"]] == ["reentry_blocked", "contact_not_found"]
    seen = cloudwatch(stack.metrics[before:])
    assert total(seen, "Enrollments") == 2
    assert total(seen, "Enrollments", outcome="reentry_blocked") == 1
    assert total(seen, "Enrollments", outcome="contact_not_found") == 1
    # A request that counts nothing publishes nothing.
    before = len(stack.metrics)
    assert stack.http("GET", f"/flows/{flow_id}/participants").status_code == 200
    assert stack.metrics[before:] == []


def test_a_participant_that_fails_for_good_is_one_step_failure(stack: Stack) -> None:
    new_form(stack, "broken")
    doc = {
        "name": "Broken",
        "trigger": {"type": "form_submitted", "form": "broken"},
        "start_at": "fix",
        "steps": [
            {"id": "fix", "type": "update_contact", "set": {"phone": "not a phone number"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
    flow_id = new_flow(stack, doc)
    cid = submit(stack, "broken", email="dora@example.com")["contact_id"]
    stack.run_until(lambda: finished(stack, flow_id, f"{cid}.1"))
    assert stack.participant(flow_id, f"{cid}.1")["status"] == "failed"
    stack.settle()

    seen = cloudwatch(stack.metrics)
    assert total(seen, "StepFailures") == 1
    assert total(seen, "StepFailures", error="Floe.StepFailed") == 1
    assert total(seen, "Sends") == 0


def test_a_record_a_worker_cannot_handle_is_counted_whether_its_batch_fails_whole_or_in_part(stack: Stack) -> None:
    bad = json.dumps({"type": "no_such_trigger"})
    # Alone in its batch, the invocation fails (Lambda retries the batch); the metric is still published.
    stack.sqs.send_message(QueueUrl=stack.enroll_url, MessageBody=bad)
    with pytest.raises(BatchProcessingError):
        drain(stack.sqs, stack.enroll_url, handlers.enrollments)
    assert total(cloudwatch(stack.metrics), "FailedRecords", worker="enrollments") == 1

    # Beside a good record, only the bad one fails (a partial batch response) and is counted.
    stack.sqs.purge_queue(QueueUrl=stack.enroll_url)
    stack.sqs.send_message(QueueUrl=stack.enroll_url, MessageBody=bad)
    good = {"type": "form_submitted", "form": "nobody-listens", "contact_id": "c0"}
    stack.sqs.send_message(QueueUrl=stack.enroll_url, MessageBody=json.dumps(good))
    assert drain(stack.sqs, stack.enroll_url, handlers.enrollments) == 2
    seen = cloudwatch(stack.metrics)
    assert total(seen, "FailedRecords") == 2
    assert total(seen, "FailedRecords", worker="enrollments") == 2


def test_in_lambda_the_documents_are_printed_as_emf_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOE_TENANT", "acme")
    # Set in a function's environment, it must not join the `[tenant]` dimension set.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "floe")
    settings.cache_clear()
    try:
        metrics.flush()
        capsys.readouterr()
        metrics.send("email", "sent")
        metrics.send("email", "sent")
        metrics.send("sms", "rejected")
        assert metrics.flush() == 2
        lines = capsys.readouterr().out.splitlines()
        documents = [json.loads(line) for line in lines]
        by_channel = {d["channel"]: d for d in documents}
        assert by_channel["email"]["Sends"] == [2.0] and by_channel["email"]["tenant"] == "acme"
        assert by_channel["sms"]["outcome"] == "rejected"
        for d in documents:
            assert d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["tenant"], ["tenant", "channel", "outcome"]]
            assert "service" not in d
        # Published once: a second flush has nothing to write.
        assert metrics.flush() == 0 and capsys.readouterr().out == ""

        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        metrics.skip("email", "no_email")
        assert metrics.flush() == 0 and capsys.readouterr().out == ""
    finally:
        settings.cache_clear()
