"""Replaying the change batches the stream consumers gave up on (`floe-<tenant>-changes-dlq`).

A message of the changes dead-letter queue is not a change but where one is: Lambda's
`DDBStreamBatchInfo` (stream, shard, first and last sequence number). Once the cause is fixed,
`ChangeReplay.run` reads each described batch from its stream again and hands every record to the
change worker, in order, as the stream's Lambda would; the message is deleted only when all its
records were handled. Handling a change twice writes the same index and timeline items, so a replay
that stops half-way can simply run again.

Stream records live 24 hours. A batch whose records are gone is reported as `expired` and its
message kept: its contacts' segment index is then rebuilt with `reindex` (see `chalicelib.reindex`);
timeline items of those changes cannot be recovered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.local.streams import lambda_records

# A record as the stream's Lambda receives it (eventSourceARN set, times as epoch seconds).
Handle = Callable[[dict[str, Any]], None]
# Empty pages read in a row before a batch counts as read: an open shard may answer empty pages
# before the records it still holds.
EMPTY_READS = 5
# How long a message being replayed stays hidden; one that fails shows up again after it.
REPLAY_VISIBILITY = 120
# The stream errors that mean the records are gone (trimmed after 24 hours, or the stream deleted).
_GONE = ("TrimmedDataAccessException", "ResourceNotFoundException", "ExpiredIteratorException")


@dataclass
class Replay:
    dry_run: bool
    batches: int = 0
    records: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    expired: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    left: int = 0

    def as_dict(self) -> dict[str, Any]:
        done = "would_replay" if self.dry_run else "replayed"
        return {
            "dry_run": self.dry_run,
            f"{done}_batches": self.batches,
            f"{done}_records": self.records,
            "failed": self.failed,
            "expired": self.expired,
            "unreadable": self.unreadable,
            "left": self.left,
        }


def batch_of(body: str) -> dict[str, Any] | None:
    """The `DDBStreamBatchInfo` of a dead letter, or None when the message is not one."""
    try:
        info = json.loads(body).get("DDBStreamBatchInfo")
    except (ValueError, AttributeError):
        return None
    needed = ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")
    if not isinstance(info, dict) or any(not isinstance(info.get(k), str) for k in needed):
        return None
    return info


class ChangeReplay:
    def __init__(self, sqs: Any, streams: Any, queue_url: str, handle: Handle) -> None:
        self._sqs = sqs
        self._streams = streams
        self._queue = queue_url
        self._handle = handle

    def records(self, info: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The batch's records, oldest first, or None when the stream no longer holds them."""
        arn, first, last = info["streamArn"], int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        try:
            iterator = self._streams.get_shard_iterator(
                StreamArn=arn,
                ShardId=info["shardId"],
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=info["startSequenceNumber"],
            )["ShardIterator"]
            found: list[dict[str, Any]] = []
            empty = 0
            while iterator and empty < EMPTY_READS:
                page = self._streams.get_records(ShardIterator=iterator, Limit=100)
                iterator = page.get("NextShardIterator")
                got = page.get("Records", [])
                empty = 0 if got else empty + 1
                for record in got:
                    sequence = int(record["dynamodb"]["SequenceNumber"])
                    if sequence > last:
                        return found or None
                    if sequence >= first:
                        found.append(record)
                if found and int(found[-1]["dynamodb"]["SequenceNumber"]) == last:
                    return found
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _GONE:
                return None
            raise
        return found or None

    def run(self, *, dry_run: bool = False) -> Replay:
        out = Replay(dry_run=dry_run)
        # At most what is there now: a message kept after a failure is not taken twice in one run.
        budget = self._visible()
        seen: set[str] = set()
        while len(seen) < budget:
            got = self._sqs.receive_message(
                QueueUrl=self._queue,
                MaxNumberOfMessages=min(10, budget - len(seen)),
                VisibilityTimeout=REPLAY_VISIBILITY,
                WaitTimeSeconds=1,
            ).get("Messages", [])
            fresh = [m for m in got if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                self._one(message, out)
        out.left = self._visible()
        return out

    def _visible(self) -> int:
        attrs = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    def _one(self, message: dict[str, Any], out: Replay) -> None:
        info = batch_of(message["Body"])
        try:
            records = self.records(info) if info is not None else None
        except ParamValidationError:  # ids of the wrong shape: not a batch of this stack's streams
            info = records = None
        if info is None:
            out.unreadable += 1
        elif records is None:
            out.expired.append(_where(info))
        elif out.dry_run:
            out.batches += 1
            out.records += len(records)
        elif (error := self._replay(info["streamArn"], records)) is not None:
            out.failed.append({**_where(info), "error": error})
        else:
            self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
            out.batches += 1
            out.records += len(records)
            return
        # Kept: visible again at once, for the next replay (or, when expired, until `reindex` is done).
        self._sqs.change_message_visibility(
            QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )

    def _replay(self, arn: str, records: list[dict[str, Any]]) -> str | None:
        """Hand the records to the worker in order; the error that stopped it, if one did."""
        try:
            for record in lambda_records(arn, records):
                self._handle(record)
        except Exception as exc:  # any error: reported to the operator with the batch it stopped
            return f"{type(exc).__name__}: {exc}"
        return None


def _where(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")}
