"""The Floe Chalice app: routes and event handlers only; the work happens in chalicelib."""

from typing import Any

from chalice import Chalice
from chalice.app import SNSEvent, SQSEvent

from chalicelib import handlers, metrics
from chalicelib.api import authorizer, contacts, docs, flows, imports, keys, public, records, segments, templates
from chalicelib.api.http import errors_as_json
from chalicelib.config import settings

app = Chalice(app_name="floe")
app.api.binary_types.append("image/gif")
app.register_middleware(errors_as_json, "http")
app.register_middleware(metrics.after_request, "http")
app.register_blueprint(authorizer.bp)
app.register_blueprint(public.bp)
app.register_blueprint(flows.bp)
app.register_blueprint(contacts.bp)
app.register_blueprint(keys.bp)
app.register_blueprint(records.bp)
app.register_blueprint(segments.bp)
app.register_blueprint(imports.bp)
app.register_blueprint(templates.bp)
app.register_blueprint(docs.bp)

QUEUES = f"floe-{settings().tenant}-"


@app.on_sqs_message(queue=QUEUES + "steps", batch_size=10, name="step_worker")
def step_worker(event: SQSEvent) -> dict[str, Any]:
    return handlers.steps(event.to_dict(), event.context)


@app.on_sqs_message(queue=QUEUES + "enrollments", batch_size=10, name="enrollment_worker")
def enrollment_worker(event: SQSEvent) -> dict[str, Any]:
    return handlers.enrollments(event.to_dict(), event.context)


@app.on_sqs_message(queue=QUEUES + "imports", batch_size=1, name="import_worker")
def import_worker(event: SQSEvent) -> dict[str, Any]:
    return handlers.imports(event.to_dict(), event.context)


# The stream ARNs are the tables' `StreamArn`s, set by infra/resources.json when packaged.
STREAMS = f"arn:aws:dynamodb:{settings().region}:000000000000:table/floe-{settings().tenant}-"


@app.on_dynamodb_record(stream_arn=STREAMS + "contacts/stream/latest", batch_size=100, name="contact_changes")
def contact_changes(event: Any) -> dict[str, Any]:
    return handlers.changes(event.to_dict(), event.context)


@app.on_dynamodb_record(stream_arn=STREAMS + "crm/stream/latest", batch_size=100, name="crm_changes")
def crm_changes(event: Any) -> dict[str, Any]:
    return handlers.changes(event.to_dict(), event.context)


@app.on_dynamodb_record(stream_arn=STREAMS + "participants/stream/latest", batch_size=100, name="participant_changes")
def participant_changes(event: Any) -> dict[str, Any]:
    return handlers.changes(event.to_dict(), event.context)


@app.on_sns_message(topic=QUEUES + "ses-events", name="ses_event_worker")
def ses_event_worker(event: SNSEvent) -> list[str]:
    return handlers.ses_events(event.to_dict(), event.context)
