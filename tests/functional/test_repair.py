"""Changes the change worker missed, repaired with the runbook's commands against the whole stack in moto.

The segment index table goes missing (a failed deploy, a restore in progress): the contact changes made
meanwhile fail every retry and their stream batches are dead-lettered. Once the table is back,
`replay-changes` reads those batches from the stream again, and `reindex` rebuilds what no stream holds
any more (the table came back empty). Both show what they would do first, and a second run does nothing.
"""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib.storage.models import ContactModel, SegmentIndexModel
from tests.functional.conftest import REGION, Stack
from tests.functional.test_operate import admin, depth
from tests.functional.test_segments import count, members, new_contact, new_segment
from tests.functional.test_timeline import timeline

VIP = {"type": "tag", "tag": "vip"}


def test_missed_changes_are_replayed_from_the_stream_and_the_index_rebuilt(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    vip = new_segment(stack, "VIPs", VIP)
    anna = new_contact(stack, email="anna@example.com", tags=["vip"])
    stack.settle()
    assert count(stack, vip)["count"] == 1

    SegmentIndexModel.delete_table()
    ben = new_contact(stack, email="ben@example.com", tags=["vip"])
    stack.settle()
    assert depth(stack, stack.changes_dlq_url) == 1
    assert timeline(stack, ben) == []
    code, status, _ = admin(capsys, "dlq-status")
    assert {q["queue"]: q["messages"] for q in status["dead_letter_queues"]}["changes"] == 1

    # The cause is fixed: the table is back, empty.
    SegmentIndexModel.create_table(wait=True)
    code, dry, _ = admin(capsys, "replay-changes", "--dry-run")
    assert (code, dry["would_replay_batches"], dry["would_replay_records"]) == (0, 1, 1)
    assert depth(stack, stack.changes_dlq_url) == 1 and count(stack, vip)["count"] == 0

    code, replayed, _ = admin(capsys, "replay-changes")
    assert code == 0, replayed
    assert (replayed["replayed_batches"], replayed["replayed_records"], replayed["left"]) == (1, 1, 0)
    assert replayed["failed"] == replayed["expired"] == []
    assert [i["kind"] for i in timeline(stack, ben)] == ["contact_created"]
    # Ben's change is indexed again; Anna's entry went with the old table and no stream record brings it back.
    assert members(stack, vip) == ["ben@example.com"]
    code, again, _ = admin(capsys, "replay-changes")
    assert (code, again["replayed_batches"], again["left"]) == (0, 0, 0)

    code, dry, _ = admin(capsys, "reindex", "--dry-run")
    assert code == 0
    assert (dry["contacts"], dry["contacts_fixed"], dry["entries_added"], dry["entries_removed"]) == (2, 1, 1, 0)
    assert count(stack, vip)["count"] == 1
    code, rebuilt, _ = admin(capsys, "reindex")
    assert (code, rebuilt["contacts_fixed"], rebuilt["entries_added"]) == (0, 1, 1)
    assert sorted(members(stack, vip)) == ["anna@example.com", "ben@example.com"]
    assert count(stack, vip)["count"] == 2

    # An entry the contact no longer has (its change never indexed) is removed; nothing else moves.
    SegmentIndexModel("tag:vip", "ct_gone").save()
    SegmentIndexModel("tag:churned", anna).save()
    code, fixed, _ = admin(capsys, "reindex")
    assert (fixed["contacts_fixed"], fixed["entries_added"], fixed["entries_removed"]) == (2, 0, 2)
    assert count(stack, vip)["count"] == 2
    code, idle, _ = admin(capsys, "reindex")
    assert (idle["contacts_fixed"], idle["entries_added"], idle["entries_removed"]) == (0, 0, 0)


def test_a_dead_letter_that_cannot_be_replayed_is_reported_and_kept(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    contact = new_contact(stack, email="cleo@example.com")
    stack.settle()
    table = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=ContactModel.Meta.table_name)
    arn = table["Table"]["LatestStreamArn"]
    # A batch of a stream that no longer exists (its table was deleted): its records are gone with it.
    gone = {
        "DDBStreamBatchInfo": {
            "streamArn": arn.replace(ContactModel.Meta.table_name, "floe-test-deleted"),
            "shardId": "shardId-00000001541626099285-f35f62ef",
            "startSequenceNumber": "100000000000000000001",
            "endSequenceNumber": "100000000000000000001",
        }
    }
    stack.sqs.send_message(QueueUrl=stack.changes_dlq_url, MessageBody=json.dumps(gone))
    stack.sqs.send_message(QueueUrl=stack.changes_dlq_url, MessageBody="not a failure record")
    malformed = {"DDBStreamBatchInfo": {**gone["DDBStreamBatchInfo"], "shardId": "7"}}
    stack.sqs.send_message(QueueUrl=stack.changes_dlq_url, MessageBody=json.dumps(malformed))
    code, out, _ = admin(capsys, "replay-changes")
    assert code == 1
    assert out["replayed_batches"] == 0 and out["unreadable"] == 2 and out["failed"] == []
    assert [e["streamArn"] for e in out["expired"]] == [gone["DDBStreamBatchInfo"]["streamArn"]]
    assert out["left"] == 3 and depth(stack, stack.changes_dlq_url) == 3
    assert [i["kind"] for i in timeline(stack, contact)] == ["contact_created"]
