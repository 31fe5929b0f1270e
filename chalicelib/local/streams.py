"""DynamoDB streams → the change worker, as Lambda's event-source mapping does it in AWS.

`StreamPump.drain` reads every shard of the streamed tables once from where it stopped, hands the
records to the handler as a Lambda event, and on a partial failure starts again at the first failed
record, so nothing is skipped. Like the mapping in infra/ (`MaximumRetryAttempts`), a batch that
still fails after `max_retries` retries is described to `on_failure` (the changes dead-letter
queue, in Lambda's `DDBStreamBatchInfo` shape) and passed over, so one bad record cannot hold its
shard, or a test waiting for the stack to settle, forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.local.pumps import LambdaContext
from chalicelib.logs import logger

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
# The retries of a failing batch before it is passed over: infra/resources.json's MaximumRetryAttempts.
MAX_RETRIES = 10


class StreamPump:
    def __init__(
        self,
        dynamodb: Any,
        streams: Any,
        tables: list[str],
        handler: Handler,
        *,
        batch_size: int = 100,
        max_retries: int = MAX_RETRIES,
        on_failure: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._dynamodb = dynamodb
        self._streams = streams
        self._tables = tables
        self._handler = handler
        self._batch = batch_size
        self._max_retries = max_retries
        self._on_failure = on_failure
        # (stream, shard) → (the first failed record's sequence number, how often it failed in a row).
        self._failing: dict[tuple[str, str], tuple[str, int]] = {}
        self._arns: dict[str, str] = {}
        # (stream, shard) → the sequence number of the last record handled. A fresh iterator is taken
        # from it on every read: iterators expire (after 15 minutes in AWS), and moto's go stale when a
        # transaction rewrites its tables.
        self._done: dict[tuple[str, str], str] = {}

    def _stream_arn(self, table: str) -> str:
        if table not in self._arns:
            self._arns[table] = self._dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        return self._arns[table]

    def drain(self) -> int:
        handled = 0
        for table in self._tables:
            arn = self._stream_arn(table)
            for shard in self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                handled += self._read(arn, shard["ShardId"])
        return handled

    def _iterator(self, arn: str, shard: str) -> str:
        last = self._done.get((arn, shard))
        where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last} if last else {}
        return str(
            self._streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard, **(where or {"ShardIteratorType": "TRIM_HORIZON"})
            )["ShardIterator"]
        )

    def _read(self, arn: str, shard: str) -> int:
        got = self._streams.get_records(ShardIterator=self._iterator(arn, shard), Limit=self._batch)
        records = got.get("Records", [])
        if not records:
            return 0
        event = {"Records": lambda_records(arn, records)}
        try:
            result = self._handler(event, LambdaContext()) or {}
            failures = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception as exc:
            # A function that raises (Powertools does when every record failed) failed the whole batch;
            # the records' own errors are logged by the batch processor.
            logger.warning("change batch failed", extra={"stream": arn, "shard": shard, "error": type(exc).__name__})
            failures = {r["dynamodb"]["SequenceNumber"] for r in records}
        # Lambda checkpoints before the first failed record and delivers it (and what follows) again.
        for i, record in enumerate(records):
            sequence = record["dynamodb"]["SequenceNumber"]
            if sequence in failures:
                self._failed(arn, shard, records[i:])
                break
            self._done[(arn, shard)] = sequence
        else:
            self._failing.pop((arn, shard), None)
        return len(records)

    def _failed(self, arn: str, shard: str, rest: list[dict[str, Any]]) -> None:
        first = rest[0]["dynamodb"]["SequenceNumber"]
        seen, times = self._failing.get((arn, shard), ("", 0))
        times = times + 1 if seen == first else 1
        if times <= self._max_retries:
            self._failing[(arn, shard)] = (first, times)
            return
        # Retries exhausted: describe the batch to the dead-letter destination and move past it.
        self._failing.pop((arn, shard), None)
        self._done[(arn, shard)] = rest[-1]["dynamodb"]["SequenceNumber"]
        if self._on_failure is not None:
            self._on_failure(failure_record(arn, shard, rest, retries=self._max_retries))


def to_queue(sqs: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination that sends each description to an SQS queue, as Lambda does."""
    import json

    def send(description: dict[str, Any]) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(description))

    return send


def failure_record(arn: str, shard: str, records: list[dict[str, Any]], *, retries: int) -> dict[str, Any]:
    """What Lambda sends to a stream mapping's on-failure destination: where the records are, not them."""
    import datetime as dt

    arrived = [r["dynamodb"].get("ApproximateCreationDateTime") for r in records]
    stamps = [a.isoformat() if isinstance(a, dt.datetime) else a for a in arrived]
    return {
        "version": "1.0",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": retries + 1},
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": stamps[0],
            "approximateArrivalOfLastRecord": stamps[-1],
            "batchSize": len(records),
            "streamArn": arn,
        },
    }


def streams_client(region: str, endpoint: str | None = None) -> Any:
    """A DynamoDB Streams client on the regional endpoint: AWS answers there too, and moto (in process or
    as the local stack's server) knows no account-based stream endpoint (`<account>.streams-ddb…`)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodbstreams",
        region_name=region,
        config=Config(account_id_endpoint_mode="disabled"),
        **({"endpoint_url": endpoint} if endpoint else {}),
    )


def lambda_records(arn: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stream records (as boto3 reads them) as the stream's Lambda receives them."""
    return [_jsonable({**r, "eventSourceARN": arn}) for r in records]


def _jsonable(value: Any) -> Any:
    """boto3 gives datetimes where Lambda's event has epoch seconds."""
    import datetime as dt

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return value
