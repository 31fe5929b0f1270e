"""The one place that builds boto3 clients and adapters, once per container."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from chalicelib.config import Settings, settings


class SqsQueue:
    def __init__(self, client: Any, url: str) -> None:
        self._sqs = client
        self._url = url

    def send(self, body: dict[str, Any]) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=json.dumps(body))


def build_runtime(s: Settings) -> Any:
    # Imported here so that importing the app (and answering /health) stays cheap.
    import boto3

    from chalicelib.channels.email import SesEmailSender
    from chalicelib.channels.outcome import no_retry_config
    from chalicelib.channels.sms import SnsSmsSender
    from chalicelib.channels.tokens import LinkSigner
    from chalicelib.channels.webhook import WebhookCaller
    from chalicelib.engine.ports import Runtime
    from chalicelib.orchestration.stepfunctions import StateMachines, TaskAnswers
    from chalicelib.storage import catalog, models, repos
    from chalicelib.storage.contacts import Contacts
    from chalicelib.storage.crm import CrmObjects
    from chalicelib.storage.imports import Imports
    from chalicelib.storage.keys import ApiKeys
    from chalicelib.storage.repos import utcnow
    from chalicelib.storage.segment_index import SegmentIndex
    from chalicelib.storage.timeline import Timeline

    models.bind(table_prefix=s.table_prefix, region=s.region, host=s.endpoint_url)
    session = boto3.session.Session(region_name=s.region)
    endpoint = {"endpoint_url": s.endpoint_url} if s.endpoint_url else {}
    sfn = session.client("stepfunctions", **endpoint)
    sqs = session.client("sqs", **endpoint)
    # Sending clients never retry by themselves: a retried send may be a second send.
    sesv2 = session.client("sesv2", config=no_retry_config(), **endpoint)
    sns = session.client("sns", config=no_retry_config(), **endpoint)
    return Runtime(
        settings=s,
        clock=utcnow,
        contacts=Contacts(utcnow),
        flows=repos.Flows(utcnow),
        participants=repos.Participants(utcnow),
        claims=repos.Claims(utcnow),
        waits=repos.Waits(utcnow),
        forms=repos.Forms(utcnow),
        fields=catalog.FieldDefinitions(utcnow),
        keys=ApiKeys(utcnow),
        segments=catalog.segments(utcnow),
        segment_index=SegmentIndex(utcnow),
        templates=catalog.templates(utcnow),
        timeline=Timeline(utcnow),
        crm=CrmObjects(utcnow),
        imports=Imports(utcnow),
        email=SesEmailSender(sesv2, configuration_set=s.configuration_set),
        sms=SnsSmsSender(sns),
        webhooks=WebhookCaller(),
        machines=StateMachines(sfn, role_arn=s.state_machine_role_arn, name_prefix=s.state_machine_prefix),
        tasks=TaskAnswers(sfn),
        enroll_queue=SqsQueue(sqs, s.enroll_queue_url),
        imports_queue=SqsQueue(sqs, s.imports_queue_url),
        links=LinkSigner(s.link_secret),
    )


@cache
def runtime() -> Any:
    """The runtime of this container (typed `engine.ports.Runtime`; `Any` keeps the import lazy)."""
    return build_runtime(settings())
