"""Reading a dead-lettered stream batch back (`chalicelib.replay`), against botocore's stubbed stream API.

moto neither trims stream records nor pages through empty reads, which DynamoDB Streams does; the
stubber answers exactly as the service documents it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from chalicelib.local.streams import streams_client
from chalicelib.replay import ChangeReplay, batch_of

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/floe-t-contacts/stream/2026-11-23T10:00:00.000"
SHARD = "shardId-00000001541626099285-f35f62ef"


def seq(n: int) -> str:
    return str(10**20 + n)


def info(first: int, last: int) -> dict[str, Any]:
    return {"streamArn": ARN, "shardId": SHARD, "startSequenceNumber": seq(first), "endSequenceNumber": seq(last)}


def record(n: int) -> dict[str, Any]:
    return {"eventID": str(n), "eventName": "MODIFY", "dynamodb": {"SequenceNumber": seq(n)}}


def streams(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Stubber]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = streams_client("eu-west-1")
    return client, Stubber(client)


def test_a_batch_is_read_across_empty_pages_up_to_its_last_record(monkeypatch: pytest.MonkeyPatch) -> None:
    client, stub = streams(monkeypatch)
    stub.add_response(
        "get_shard_iterator",
        {"ShardIterator": "i" * 8},
        {"StreamArn": ARN, "ShardId": SHARD, "ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": seq(5)},
    )
    stub.add_response("get_records", {"Records": [], "NextShardIterator": "j" * 8})
    stub.add_response("get_records", {"Records": [record(5), record(6)], "NextShardIterator": "k" * 8})
    stub.add_response("get_records", {"Records": [record(7), record(9)], "NextShardIterator": "l" * 8})
    with stub:
        got = ChangeReplay(None, client, "", lambda r: None).records(info(5, 7))
    assert [r["eventID"] for r in got or []] == ["5", "6", "7"]
    stub.assert_no_pending_responses()


def test_records_past_the_stream_s_24_hours_count_as_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    client, stub = streams(monkeypatch)
    stub.add_client_error("get_shard_iterator", "TrimmedDataAccessException", "trimmed")
    with stub:
        assert ChangeReplay(None, client, "", lambda r: None).records(info(5, 7)) is None


def test_an_open_shard_that_stays_empty_ends_the_read(monkeypatch: pytest.MonkeyPatch) -> None:
    client, stub = streams(monkeypatch)
    stub.add_response("get_shard_iterator", {"ShardIterator": "i" * 8})
    for _ in range(5):
        stub.add_response("get_records", {"Records": [], "NextShardIterator": "j" * 8})
    with stub:
        assert ChangeReplay(None, client, "", lambda r: None).records(info(5, 7)) is None
    stub.assert_no_pending_responses()


def test_only_lambda_failure_records_are_batches() -> None:
    assert batch_of(json.dumps({"version": "1.0", "DDBStreamBatchInfo": info(1, 2)})) == info(1, 2)
    assert batch_of("[]") is None
    assert batch_of("{}") is None
    assert batch_of('{"DDBStreamBatchInfo": {"streamArn": 5}}') is None
