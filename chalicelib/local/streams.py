"""DynamoDB streams → the change worker, as Lambda's event-source mapping does it in AWS.

`StreamPump.drain` reads every shard of the streamed tables once from where it stopped, hands the
records to the handler as a Lambda event, and on a partial failure starts again at the first failed
record, so nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.local.pumps import LambdaContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class StreamPump:
    def __init__(
        self, dynamodb: Any, streams: Any, tables: list[str], handler: Handler, *, batch_size: int = 100
    ) -> None:
        self._dynamodb = dynamodb
        self._streams = streams
        self._tables = tables
        self._handler = handler
        self._batch = batch_size
        self._arns: dict[str, str] = {}
        # shard id → next iterator (None once a closed shard is read to its end)
        self._iterators: dict[tuple[str, str], str | None] = {}

    def _stream_arn(self, table: str) -> str:
        if table not in self._arns:
            self._arns[table] = self._dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        return self._arns[table]

    def drain(self) -> int:
        handled = 0
        for table in self._tables:
            arn = self._stream_arn(table)
            for shard in self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                key = (arn, shard["ShardId"])
                if key not in self._iterators:
                    self._iterators[key] = self._streams.get_shard_iterator(
                        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                    )["ShardIterator"]
                handled += self._read(arn, key)
        return handled

    def _read(self, arn: str, key: tuple[str, str]) -> int:
        iterator = self._iterators[key]
        if iterator is None:
            return 0
        got = self._streams.get_records(ShardIterator=iterator, Limit=self._batch)
        records = got.get("Records", [])
        self._iterators[key] = got.get("NextShardIterator")
        if not records:
            return 0
        event = {"Records": [{**r, "eventSourceARN": arn} for r in records]}
        result = self._handler(_jsonable(event), LambdaContext()) or {}
        failures = [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]
        if failures:
            # Lambda checkpoints before the first failed record and delivers it again.
            self._iterators[key] = self._streams.get_shard_iterator(
                StreamArn=arn, ShardId=key[1], ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=failures[0]
            )["ShardIterator"]
        return len(records)


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
