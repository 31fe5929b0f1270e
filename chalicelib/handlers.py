"""The queue consumers behind `app.py`'s event handlers, with Powertools batch processing.

Each record is handled on its own; a failing record is reported back as a batch item failure, so
SQS redelivers only that one (and moves it to the dead-letter queue after the redrive limit). Every
entry point publishes the metrics counted during its invocation (see `chalicelib.metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from chalicelib import metrics
from chalicelib.bootstrap import runtime
from chalicelib.logs import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


def _batch(
    event: dict[str, Any], context: Any, worker: str, handle: Callable[[Any], None], *, stream: bool = False
) -> dict[str, Any]:
    """Each record on its own, failures reported per record (partial batch response) and counted."""
    # Imported on the first batch: Powertools' batch module (with asyncio) would add a third to the
    # app's import time, and the API functions never need it.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def counted(record: Any) -> None:
        try:
            handle(record)
        except Exception:
            metrics.failed_record(worker)
            raise

    kind = EventType.DynamoDBStreams if stream else EventType.SQS
    return dict(
        process_partial_response(event=event, record_handler=counted, processor=BatchProcessor(kind), context=context)
    )


@cache
def _step_worker() -> Any:
    from chalicelib.engine.steps import StepWorker

    return StepWorker(runtime())


@cache
def _enrollment_worker() -> Any:
    from chalicelib.engine.events import EnrollmentWorker

    return EnrollmentWorker(runtime())


@cache
def _change_worker() -> Any:
    from chalicelib.engine.changes import ChangeWorker

    return ChangeWorker(runtime())


def _change_record(record: DynamoDBRecord) -> None:
    _change_worker().handle(record.raw_event)


@cache
def _import_worker() -> Any:
    from chalicelib.engine.imports import ImportWorker

    return ImportWorker(runtime())


def _import_record(record: SQSRecord) -> None:
    _import_worker().handle(json.loads(record.body))


def _step_record(record: SQSRecord) -> None:
    _step_worker().handle(json.loads(record.body))


def _enroll_record(record: SQSRecord) -> None:
    _enrollment_worker().handle(json.loads(record.body))


@metrics.published
def steps(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with logger.append_context_keys(queue="steps"):
        return _batch(event, context, "steps", _step_record)


@metrics.published
def enrollments(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with logger.append_context_keys(queue="enrollments"):
        return _batch(event, context, "enrollments", _enroll_record)


@metrics.published
def imports(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with logger.append_context_keys(queue="imports"):
        return _batch(event, context, "imports", _import_record)


@metrics.published
def ses_events(event: dict[str, Any], context: Any) -> list[str]:
    """SNS delivers one record per invocation; its message is the SES event as JSON."""
    from chalicelib.engine.events import DeliveryEvents

    events = DeliveryEvents(runtime())
    suppressed: list[str] = []
    with logger.append_context_keys(topic="ses-events"):
        for record in event.get("Records", []):
            suppressed.extend(events.handle(json.loads(record["Sns"]["Message"])))
    return suppressed


@metrics.published
def changes(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """DynamoDB stream records of contacts, CRM objects and participants (see `engine.changes`)."""
    with logger.append_context_keys(stream="changes"):
        return _batch(event, context, "changes", _change_record, stream=True)
