"""The queue consumers behind `app.py`'s event handlers, with Powertools batch processing.

Each record is handled on its own; a failing record is reported back as a batch item failure, so
SQS redelivers only that one (and moves it to the dead-letter queue after the redrive limit).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.bootstrap import runtime
from chalicelib.logs import logger


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


def steps(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with logger.append_context_keys(queue="steps"):
        return dict(
            process_partial_response(
                event=event, record_handler=_step_record, processor=BatchProcessor(EventType.SQS), context=context
            )
        )


def enrollments(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with logger.append_context_keys(queue="enrollments"):
        return dict(
            process_partial_response(
                event=event, record_handler=_enroll_record, processor=BatchProcessor(EventType.SQS), context=context
            )
        )


def imports(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with logger.append_context_keys(queue="imports"):
        return dict(
            process_partial_response(
                event=event, record_handler=_import_record, processor=BatchProcessor(EventType.SQS), context=context
            )
        )


def ses_events(event: dict[str, Any], context: Any) -> list[str]:
    """SNS delivers one record per invocation; its message is the SES event as JSON."""
    from chalicelib.engine.events import DeliveryEvents

    events = DeliveryEvents(runtime())
    suppressed: list[str] = []
    with logger.append_context_keys(topic="ses-events"):
        for record in event.get("Records", []):
            suppressed.extend(events.handle(json.loads(record["Sns"]["Message"])))
    return suppressed


def changes(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """DynamoDB stream records of contacts, CRM objects and participants (see `engine.changes`)."""
    with logger.append_context_keys(stream="changes"):
        return dict(
            process_partial_response(
                event=event,
                record_handler=_change_record,
                processor=BatchProcessor(EventType.DynamoDBStreams),
                context=context,
            )
        )
