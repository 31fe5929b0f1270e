"""The small interfaces the use cases need from the outside world, and the bundle that carries them.

Only `bootstrap` (and test fixtures) build a `Runtime`; use cases never construct clients.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    # Types only: importing the adapters (botocore, PynamoDB) here would make every module that
    # names the Runtime pay for them at import, and with it the app's cold start.
    from chalicelib.channels.outcome import SendOutcome
    from chalicelib.channels.tokens import LinkSigner
    from chalicelib.config import Settings
    from chalicelib.storage.catalog import Catalog, FieldDefinitions
    from chalicelib.storage.contacts import Contacts
    from chalicelib.storage.crm import CrmObjects
    from chalicelib.storage.imports import Imports
    from chalicelib.storage.keys import ApiKeys
    from chalicelib.storage.models import SegmentModel, TemplateModel
    from chalicelib.storage.repos import Claims, Flows, Forms, Participants, Waits
    from chalicelib.storage.segment_index import SegmentIndex
    from chalicelib.storage.timeline import Timeline


class EmailSender(Protocol):
    def send(self, raw: bytes, *, to: str, sender: str, tags: Mapping[str, str] | None = None) -> SendOutcome: ...


class SmsSender(Protocol):
    def send(self, phone: str, text: str) -> SendOutcome: ...


class WebhookCaller(Protocol):
    def call(self, url: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None) -> SendOutcome: ...


class StateMachines(Protocol):
    def publish(self, flow_id: str, version: int, definition: dict[str, Any]) -> str: ...
    def start(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> str: ...
    def stop(self, execution_arn: str, *, cause: str) -> None: ...


class TaskAnswers(Protocol):
    def succeed(self, token: str, output: dict[str, Any]) -> bool: ...
    def fail(self, token: str, *, error: str, cause: str) -> bool: ...


class Queue(Protocol):
    def send(self, body: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    clock: Callable[[], dt.datetime]
    contacts: Contacts
    flows: Flows
    participants: Participants
    claims: Claims
    waits: Waits
    forms: Forms
    fields: FieldDefinitions
    keys: ApiKeys
    segments: Catalog[SegmentModel]
    segment_index: SegmentIndex
    templates: Catalog[TemplateModel]
    timeline: Timeline
    crm: CrmObjects
    imports: Imports
    email: EmailSender
    sms: SmsSender
    webhooks: WebhookCaller
    machines: StateMachines
    tasks: TaskAnswers
    enroll_queue: Queue
    imports_queue: Queue
    links: LinkSigner
