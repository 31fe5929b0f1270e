"""The Floe Chalice app: routes and event handlers only; the work happens in chalicelib."""

from typing import Any

from chalice import Chalice
from chalice.app import SNSEvent, SQSEvent

from chalicelib import handlers
from chalicelib.api import flows, public
from chalicelib.api.http import errors_as_json
from chalicelib.config import settings

app = Chalice(app_name="floe")
app.api.binary_types.append("image/gif")
app.register_middleware(errors_as_json, "http")
app.register_blueprint(public.bp)
app.register_blueprint(flows.bp)

QUEUES = f"floe-{settings().tenant}-"


@app.on_sqs_message(queue=QUEUES + "steps", batch_size=10, name="step_worker")
def step_worker(event: SQSEvent) -> dict[str, Any]:
    return handlers.steps(event.to_dict(), event.context)


@app.on_sqs_message(queue=QUEUES + "enrollments", batch_size=10, name="enrollment_worker")
def enrollment_worker(event: SQSEvent) -> dict[str, Any]:
    return handlers.enrollments(event.to_dict(), event.context)


@app.on_sns_message(topic=QUEUES + "ses-events", name="ses_event_worker")
def ses_event_worker(event: SNSEvent) -> list[str]:
    return handlers.ses_events(event.to_dict(), event.context)
