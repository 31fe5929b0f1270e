"""The whole stack in-process: moto with Step Functions execution on, the provisioned resources, the
real app and the real workers pumped from moto's SQS."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from chalicelib import bootstrap, handlers, metrics
from chalicelib.config import settings
from chalicelib.local.gateway import shape_test_client
from chalicelib.local.provision import Queues, provision
from chalicelib.local.pumps import drain
from chalicelib.local.streams import StreamPump, streams_client, to_queue
from chalicelib.storage.keys import ApiKeys
from chalicelib.storage.models import STREAMED
from tests.conftest import fake_aws_env

REGION = "eu-west-1"
SENDER = "flows@shop.test"


@dataclass
class Stack:
    client: Client
    sqs: Any
    sfn: Any
    steps_url: str
    enroll_url: str
    imports_url: str
    admin_key: str
    changes: StreamPump
    handled: list[str] = field(default_factory=list)
    # Where the change pump describes stream batches that failed every retry.
    changes_dlq_url: str = ""
    # The EMF documents the app published (to stdout in AWS), in order: what CloudWatch would read.
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        key: str | None = "admin",
    ) -> Any:
        """A request as the admin (`key="admin"`), with another key, or with none (`key=None`)."""
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        sent = {"Content-Type": content_type, **(headers or {})}
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {self.admin_key if key == 'admin' else key}")
        return getattr(self.client.http, method.lower())(path, body=data, headers=sent)

    def key(self, role: str, name: str = "test") -> str:
        """A new API key with this role."""
        got = self.http("POST", "/keys", {"name": name, "role": role})
        assert got.status_code == 201, got.body
        return str(got.json_body["key"])

    def pump(self) -> int:
        """One round of every event source: queues, then the change streams."""
        return (
            drain(self.sqs, self.enroll_url, handlers.enrollments)
            + drain(self.sqs, self.steps_url, handlers.steps)
            + drain(self.sqs, self.imports_url, handlers.imports)
            + self.changes.drain()
        )

    def settle(self, timeout: float = 20.0) -> None:
        """Pump until every queue and stream is quiet (imports applied, index and timeline written)."""
        deadline = time.monotonic() + timeout
        while self.pump():
            assert time.monotonic() < deadline, "the stack did not settle in time"

    def run_until(self, done: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Look before pumping: a test that acts at a point of the flow must get there, not past it.
            if self._reached(done):
                return
            if not self.pump():
                time.sleep(0.05)
        raise AssertionError("the flow did not get there in time")

    @staticmethod
    def _reached(done: Callable[[], bool]) -> bool:
        try:
            return done()
        except AssertionError:
            # Not there yet: e.g. the participant the predicate reads does not exist yet.
            return False

    def participant(self, flow_id: str, participant_id: str) -> dict[str, Any]:
        got = self.http("GET", f"/flows/{flow_id}/participants/{participant_id}")
        assert got.status_code == 200, got.body
        return dict(got.json_body)

    def emails(self) -> list[EmailMessage]:
        sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
        return [email.message_from_string(m.raw_data, policy=email.policy.default) for m in sent]

    def sms(self) -> list[tuple[str, str]]:
        return list(sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values())

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        out = []
        for machine in self.sfn.list_state_machines()["stateMachines"]:
            kwargs = {"stateMachineArn": machine["stateMachineArn"]}
            if status:
                kwargs["statusFilter"] = status
            out.extend(self.sfn.list_executions(**kwargs)["executions"])
        return out


def body_of(message: EmailMessage, subtype: str = "html") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


def links(html: str, kind: str) -> list[str]:
    """Our tracking paths in an email body, e.g. `kind="o"` for the open pixel."""
    return re.findall(rf"https?://[^/\"]+(/t/{kind}/[A-Za-z0-9_\-.]+)", html)


def change_pump(region: str, sqs: Any, dead_letters: str, endpoint: str | None = None) -> StreamPump:
    """The pump that feeds the change worker from the streamed tables."""
    kwargs = {"region_name": region, **({"endpoint_url": endpoint} if endpoint else {})}
    return StreamPump(
        boto3.client("dynamodb", **kwargs),
        streams_client(region, endpoint),
        [m.Meta.table_name for m in STREAMED],
        handlers.changes,
        on_failure=to_queue(sqs, dead_letters),
    )


def provision_stack() -> tuple[Any, Any, Queues]:
    """Inside `mock_aws`: the SQS and Step Functions clients, and the stack's queues, tables and sender."""
    sqs = boto3.client("sqs", region_name=REGION)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    queues = provision(
        sqs,
        boto3.client("sesv2", region_name=REGION),
        tenant="test",
        region=REGION,
        table_prefix="floe-test-",
        sender=SENDER,
    )
    return sqs, sfn, queues


# The environment of the in-process stack (also used by `make bench`).
STACK_ENV = {
    **fake_aws_env(REGION),
    "AWS_REGION": REGION,
    "FLOE_TENANT": "test",
    "FLOE_SENDER": SENDER,
    "FLOE_PUBLIC_URL": "https://floe.shop.test",
    "FLOE_LINK_SECRET": "a-test-secret-of-enough-length",
    # Every wait lasts one second (the shortest Step Functions wait).
    "FLOE_TIME_SCALE": "1e-9",
}


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name, value in STACK_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sqs, sfn, queues = provision_stack()
        monkeypatch.setenv("FLOE_STEPS_QUEUE_URL", queues.steps)
        monkeypatch.setenv("FLOE_ENROLL_QUEUE_URL", queues.enrollments)
        monkeypatch.setenv("FLOE_IMPORTS_QUEUE_URL", queues.imports)
        _clear_caches()
        from app import app

        with serving(app, sqs, sfn, queues) as stack:
            yield stack
    _clear_caches()


@contextlib.contextmanager
def serving(app: Any, sqs: Any, sfn: Any, queues: Queues) -> Iterator[Stack]:
    """The app behind the test client with an admin key, on provisioned resources (inside `mock_aws`)."""
    _, admin_key = ApiKeys().create("test admin", "admin")
    with shape_test_client(Client(app)) as client, metrics.captured() as published:
        # Counted by an earlier test outside any handler: not this stack's.
        metrics.flush()
        published.clear()
        stack = Stack(
            client,
            sqs,
            sfn,
            queues.steps,
            queues.enrollments,
            queues.imports,
            admin_key,
            change_pump(REGION, sqs, queues.changes_dlq),
        )
        stack.metrics = published
        stack.changes_dlq_url = queues.changes_dlq
        try:
            yield stack
        finally:
            # Parked executions keep moto threads alive; stop them with the test.
            for execution in stack.executions("RUNNING"):
                sfn.stop_execution(executionArn=execution["executionArn"])


def _clear_caches() -> None:
    settings.cache_clear()
    bootstrap.runtime.cache_clear()
    handlers._step_worker.cache_clear()
    handlers._enrollment_worker.cache_clear()
    handlers._change_worker.cache_clear()
    handlers._import_worker.cache_clear()
