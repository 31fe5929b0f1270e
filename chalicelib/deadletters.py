"""The stack's dead-letter queues: how deep each is, and moving their messages back to work.

A message lands in `floe-<tenant>-<queue>-dlq` after its worker failed it five times (the redrive
policy of infra/). Once the cause is fixed, `redrive` moves the messages back to the source queue,
where the worker handles them like new: sends are claimed, executions are named, so a message that
had half-succeeded does nothing twice.

The move is receive → send → delete, in batches of ten, rather than SQS's StartMessageMoveTask:
`--max` is then exact, a dry run can show what would move, the same code runs against the local
stack (moto has no message move tasks), and a message is deleted from the dead-letter queue only
after SQS has accepted its copy on the source queue, so nothing is lost. A crash between the two
leaves the message in both queues; the workers absorb the repeat. Floe's queues are standard
queues (no FIFO group ids to carry over); the body and message attributes are kept.

`changes-dlq` holds the failure records of the DynamoDB stream consumers: descriptions of stream
batches, not messages of a queue, so it is reported but never redriven (see docs/runbook.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# Queues whose dead letters are messages their worker can take again.
REDRIVABLE = ("steps", "enrollments", "imports")
# Every dead-letter queue of a stack, in the order `status` lists them.
DEAD_LETTER_QUEUES = (*REDRIVABLE, "changes")
# How long a message being moved stays hidden in the dead-letter queue; a failed copy shows up again after it.
MOVE_VISIBILITY = 60
SAMPLE = 10


class QueueMissing(Exception):
    """A queue the command needs does not exist: a wrong tenant or region, or a stack not deployed."""


@dataclass(frozen=True)
class Redrive:
    queue: str
    source: str
    dead_letter: str
    dry_run: bool
    moved: int = 0
    failed: int = 0
    not_deleted: int = 0
    left: int = 0
    would_move: int = 0
    sample: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "queue": self.queue,
            "from": self.dead_letter,
            "to": self.source,
            "dry_run": self.dry_run,
        }
        if self.dry_run:
            out.update(would_move=self.would_move, sample=list(self.sample))
        else:
            out.update(moved=self.moved, failed=self.failed, not_deleted=self.not_deleted, left=self.left)
        return out


def describe(body: str) -> dict[str, Any]:
    """What a dead letter is about, in the words of the runbook: flow, participant and step, or its type."""
    try:
        data = json.loads(body)
    except ValueError:
        return {"unreadable": body[:200]}
    if not isinstance(data, dict):
        return {"unreadable": body[:200]}
    raw_ids = data.get("ids")
    ids: dict[str, Any] = raw_ids if isinstance(raw_ids, dict) else {}
    picked = {
        "kind": data.get("kind") or data.get("type"),
        "flow_id": ids.get("flow_id"),
        "participant_id": ids.get("participant_id"),
        "contact_id": ids.get("contact_id") or data.get("contact_id"),
        "step": data.get("step"),
        "form": data.get("form"),
        "import_id": data.get("import_id"),
    }
    return {k: v for k, v in picked.items() if v is not None}


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    # Only the fields SendMessage takes; the list fields SQS reserves are left out.
    out = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        out[name] = {k: value[k] for k in ("DataType", "StringValue", "BinaryValue") if k in value}
    return out


class DeadLetters:
    def __init__(self, sqs: Any, *, tenant: str) -> None:
        self._sqs = sqs
        self._tenant = tenant

    def name(self, queue: str, *, dead: bool) -> str:
        return f"floe-{self._tenant}-{queue}" + ("-dlq" if dead else "")

    def _url(self, name: str) -> str | None:
        try:
            return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                return None
            raise

    def queue_url(self, name: str) -> str:
        url = self._url(name)
        if url is None:
            raise QueueMissing(f"no queue {name}")
        return url

    def _depth(self, url: str) -> tuple[int, int]:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def status(self) -> list[dict[str, Any]]:
        """Each dead-letter queue with its depth; `messages` is what a redrive would move now."""
        out = []
        for queue in DEAD_LETTER_QUEUES:
            name = self.name(queue, dead=True)
            url = self._url(name)
            row: dict[str, Any] = {"queue": queue, "dead_letter_queue": name, "exists": url is not None}
            if url is not None:
                visible, hidden = self._depth(url)
                row.update(messages=visible, in_flight=hidden, redrivable=queue in REDRIVABLE)
            out.append(row)
        return out

    def redrive(self, queue: str, *, limit: int | None = None, dry_run: bool = False) -> Redrive:
        if queue not in REDRIVABLE:
            raise ValueError(f"{queue!r} is not a queue to redrive; one of {', '.join(REDRIVABLE)}")
        dead_name, source_name = self.name(queue, dead=True), self.name(queue, dead=False)
        dead, source = self.queue_url(dead_name), self.queue_url(source_name)
        # At most what is there now: a message that fails again and comes back meanwhile is not moved twice.
        budget, _ = self._depth(dead)
        if limit is not None:
            budget = min(budget, limit)
        if dry_run:
            return Redrive(queue, source_name, dead_name, True, would_move=budget, sample=self._peek(dead, budget))
        moved = failed = not_deleted = 0
        while moved + failed < budget:
            got = self._sqs.receive_message(
                QueueUrl=dead,
                MaxNumberOfMessages=min(10, budget - moved - failed),
                VisibilityTimeout=MOVE_VISIBILITY,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            done, refused, stayed = self._move(got, dead, source)
            moved += done
            failed += refused
            not_deleted += stayed
        left, _ = self._depth(dead)
        return Redrive(
            queue, source_name, dead_name, False, moved=moved, failed=failed, not_deleted=not_deleted, left=left
        )

    def _move(self, messages: list[dict[str, Any]], dead: str, source: str) -> tuple[int, int, int]:
        """Copy a batch to the source queue, then delete what was copied: (moved, not copied, copied but kept)."""
        entries = []
        for i, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
            if attributes := _attributes(message):
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        sent = self._sqs.send_message_batch(QueueUrl=source, Entries=entries)
        accepted = {e["Id"] for e in sent.get("Successful", [])}
        copied = [(i, m) for i, m in enumerate(messages) if str(i) in accepted]
        kept = 0
        if copied:
            deleted = self._sqs.delete_message_batch(
                QueueUrl=dead, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in copied]
            )
            # Copied but still in the dead-letter queue: a later redrive copies it again and the worker
            # absorbs the repeat; counted apart so the operator knows.
            kept = len(deleted.get("Failed", []))
        for i, message in enumerate(messages):
            if str(i) not in accepted:
                # Not copied: visible again at once, for the next redrive.
                self._sqs.change_message_visibility(
                    QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        return len(copied) - kept, len(messages) - len(copied), kept

    def _peek(self, dead: str, budget: int) -> tuple[dict[str, Any], ...]:
        """A look at the first messages that would move, leaving them visible and in place."""
        if budget <= 0:
            return ()
        got = self._sqs.receive_message(
            QueueUrl=dead, MaxNumberOfMessages=min(SAMPLE, budget), VisibilityTimeout=0
        ).get("Messages", [])
        return tuple(describe(m["Body"]) for m in got)
