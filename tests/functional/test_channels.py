"""The sending adapters against moto (SES v2, SNS), a local HTTP server (webhooks, a misbehaving AWS
endpoint) and real botocore errors."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from chalicelib.channels.email import SesEmailSender, build_message
from chalicelib.channels.outcome import SendOutcome, classify, no_retry_config
from chalicelib.channels.sms import SnsSmsSender
from chalicelib.channels.webhook import USER_AGENT, WebhookCaller
from tests.conftest import fake_aws_env
from tests.http_server import QuietHandler, serving

REGION = "eu-west-1"
SENDER = "Shop <news@shop.test>"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in fake_aws_env(REGION).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


def message(**overrides: Any) -> bytes:
    kwargs: dict[str, Any] = {
        "sender": SENDER,
        "to": "ann@example.com",
        "subject": "Welcome, Ann\n— café",
        "html": '<p>Hi Ann, <a href="https://floe.test/t/c/tok">shop</a> · <a href="https://floe.test/u/tok">stop</a></p>',
        "text": "Hi Ann, shop (https://floe.test/t/c/tok) · stop: https://floe.test/u/tok",
        "unsubscribe_url": "https://floe.test/u/tok",
        "unsubscribe_post_url": "https://floe.test/u/tok?one-click=1",
        "headers": {"X-Floe-Participant": "part-1"},
    }
    kwargs.update(overrides)
    return build_message(**kwargs)


def parse(raw: bytes | str) -> EmailMessage:
    data = raw.encode() if isinstance(raw, str) else raw
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(parsed: EmailMessage, subtype: str) -> str:
    part = parsed.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


# Building the message


def test_build_message_has_both_parts_and_one_click_headers() -> None:
    raw = message()
    raw.decode("ascii")  # 7-bit clean whatever the content
    parsed = parse(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Subject"] == "Welcome, Ann — café"  # the newline from contact data is gone
    assert parsed["List-Unsubscribe"] == "<https://floe.test/u/tok?one-click=1>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Floe-Participant"] == "part-1"
    assert parsed["Message-ID"].endswith("@shop.test>")
    assert parsed["Date"]
    assert "stop: https://floe.test/u/tok" in body(parsed, "plain")
    assert '<a href="https://floe.test/u/tok">stop</a>' in body(parsed, "html")


def test_list_unsubscribe_defaults_to_the_unsubscribe_url() -> None:
    parsed = parse(message(unsubscribe_post_url=None, headers=None))
    assert parsed["List-Unsubscribe"] == "<https://floe.test/u/tok>"


# SES v2 through moto


def test_ses_sends_the_raw_message(aws: None) -> None:
    client = boto3.client("sesv2", region_name=REGION, config=no_retry_config())
    client.create_email_identity(EmailIdentity="shop.test")
    sender = SesEmailSender(client, configuration_set="floe-marketing")

    outcome = sender.send(message(), to="ann@example.com", sender=SENDER, tags={"participant": "part-1"})

    assert outcome.status == "sent"
    assert outcome.message_id
    sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert len(sent) == 1
    assert sent[0].id == outcome.message_id
    assert sent[0].source == SENDER
    assert "ann@example.com" in sent[0].destinations
    parsed = parse(sent[0].raw_data)
    assert parsed["List-Unsubscribe"] == "<https://floe.test/u/tok?one-click=1>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["X-Floe-Participant"] == "part-1"
    assert "Hi Ann" in body(parsed, "plain")
    assert "<p>Hi Ann" in body(parsed, "html")


def test_ses_unverified_sender_is_rejected(aws: None) -> None:
    client = boto3.client("sesv2", region_name=REGION, config=no_retry_config())
    outcome = SesEmailSender(client, configuration_set=None).send(message(), to="ann@example.com", sender=SENDER)
    assert outcome.status == "rejected"
    assert "MessageRejected" in outcome.detail
    assert ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages == []


# SNS through moto


def test_sns_sends_the_sms(aws: None) -> None:
    client = boto3.client("sns", region_name=REGION, config=no_retry_config())
    outcome = SnsSmsSender(client, sender_id="SHOP").send("+31612345678", "Hi Ann, 10% off today. STOP: floe.test/u/x")
    assert outcome.status == "sent"
    assert outcome.message_id
    sms = sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages
    assert sms == {outcome.message_id: ("+31612345678", "Hi Ann, 10% off today. STOP: floe.test/u/x")}


def test_sns_invalid_number_is_rejected(aws: None) -> None:
    client = boto3.client("sns", region_name=REGION, config=no_retry_config())
    outcome = SnsSmsSender(client).send("06 12345678", "Hi")
    assert outcome.status == "rejected"
    assert sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages == {}


# Error classification


def client_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "X"
    )


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (client_error("Throttling", 400, "Maximum sending rate exceeded."), "refused"),
        (client_error("TooManyRequestsException", 429), "refused"),
        (client_error("LimitExceededException", 400), "refused"),
        (client_error("SendingPausedException", 400), "refused"),
        (client_error("Throttled", 400), "refused"),
        (client_error("SomethingNew", 429), "refused"),
        (client_error("MessageRejected", 400, "Email address is not verified."), "rejected"),
        (client_error("AccountSuspendedException", 400), "rejected"),
        (client_error("InvalidParameter", 400), "rejected"),
        (client_error("SomethingNew", 403), "rejected"),
        (client_error("InternalFailure", 500), "unknown"),
        (client_error("ServiceUnavailable", 503), "unknown"),
        (ClientError({}, "X"), "unknown"),
        (EndpointConnectionError(endpoint_url="https://email.eu-west-1.amazonaws.com"), "refused"),
        (ConnectTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"), "refused"),
        (NoCredentialsError(), "refused"),
        (ParamValidationError(report="Missing required parameter"), "rejected"),
        (ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"), "unknown"),
        (ConnectionClosedError(endpoint_url="https://email.eu-west-1.amazonaws.com"), "unknown"),
    ],
)
def test_classify(exc: BaseException, status: str) -> None:
    assert classify(exc).status == status


def test_classify_keeps_the_code_and_message() -> None:
    assert classify(client_error("Throttling", 400, "Daily message quota exceeded.")) == SendOutcome(
        "refused", detail="Throttling: Daily message quota exceeded."
    )


def test_classify_refuses_non_aws_errors() -> None:
    with pytest.raises(TypeError):
        classify(ValueError("bug"))


# A local HTTP server, standing in for a webhook receiver and for a misbehaving AWS endpoint


@dataclass
class Recorder:
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    # Path -> (status, extra headers, body, delay in seconds before answering).
    plan: dict[str, tuple[int, dict[str, str], bytes, float]] = field(default_factory=dict)


class _Handler(QuietHandler):
    recorder: Recorder

    def do_POST(self) -> None:
        data = self.body()
        self.recorder.requests.append((self.path, dict(self.headers.items()), data))
        status, headers, payload, delay = self.recorder.plan.get(self.path.split("?")[0], (404, {}, b"{}", 0.0))
        time.sleep(delay)
        # The client may have given up already (timeout tests).
        with contextlib.suppress(OSError):
            self.reply(status, payload, {"Content-Type": "application/json", **headers})


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    with serving(type("Handler", (_Handler,), {"recorder": recorder})) as base:
        yield base, recorder


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Webhooks


def test_webhook_posts_json(server: tuple[str, Recorder]) -> None:
    base, recorder = server
    recorder.plan["/hook"] = (200, {}, b'{"ok":true}', 0.0)

    outcome = WebhookCaller().call(f"{base}/hook?x=1", {"contact": {"id": "c1"}, "flow": "f1"}, headers={"X-Key": "k"})

    assert outcome == SendOutcome("sent", detail="HTTP 200 OK")
    [(path, headers, data)] = recorder.requests
    assert path == "/hook?x=1"
    assert json.loads(data) == {"contact": {"id": "c1"}, "flow": "f1"}
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert headers["X-Key"] == "k"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (201, "sent"),
        (204, "sent"),
        (429, "refused"),
        (503, "refused"),
        (400, "rejected"),
        (404, "rejected"),
        (302, "rejected"),
        (500, "unknown"),
        (502, "unknown"),
    ],
)
def test_webhook_statuses(server: tuple[str, Recorder], status: int, expected: str) -> None:
    base, recorder = server
    recorder.plan["/hook"] = (status, {"Location": f"{base}/elsewhere"}, b"", 0.0)
    assert WebhookCaller().call(f"{base}/hook", {}).status == expected
    assert [path for path, _, _ in recorder.requests] == ["/hook"]  # redirects are not followed


def test_webhook_timeout_waiting_for_the_answer_is_unknown(server: tuple[str, Recorder]) -> None:
    base, recorder = server
    recorder.plan["/slow"] = (200, {}, b"", 1.0)
    outcome = WebhookCaller(timeout=0.2).call(f"{base}/slow", {})
    assert outcome.status == "unknown"
    assert len(recorder.requests) == 1


def test_webhook_connection_refused_is_refused() -> None:
    assert WebhookCaller(timeout=1).call(f"http://127.0.0.1:{closed_port()}/hook", {}).status == "refused"


def test_webhook_non_http_url_is_rejected_without_a_request() -> None:
    assert WebhookCaller().call("file:///etc/passwd", {}).status == "rejected"


# Retries are really off: a misbehaving SES endpoint gets exactly one request


def ses_against(base: str, *, read_timeout: float = 5.0) -> SesEmailSender:
    client = boto3.client(
        "sesv2", region_name=REGION, endpoint_url=base, config=no_retry_config(read_timeout=read_timeout)
    )
    return SesEmailSender(client, configuration_set=None)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (500, "InternalFailure", "unknown"),
        (503, "ServiceUnavailable", "unknown"),
        (429, "TooManyRequestsException", "refused"),
        (400, "MessageRejected", "rejected"),
    ],
)
def test_no_sdk_retry_on_errors(
    aws_env: None, server: tuple[str, Recorder], status: int, code: str, expected: str
) -> None:
    base, recorder = server
    recorder.plan["/v2/email/outbound-emails"] = (status, {"x-amzn-ErrorType": code}, b'{"message":"no"}', 0.0)
    outcome = ses_against(base).send(message(), to="ann@example.com", sender=SENDER)
    assert outcome.status == expected
    assert code in outcome.detail
    assert len(recorder.requests) == 1


def test_ses_read_timeout_is_unknown_and_not_retried(aws_env: None, server: tuple[str, Recorder]) -> None:
    base, recorder = server
    recorder.plan["/v2/email/outbound-emails"] = (200, {}, b'{"MessageId":"late"}', 1.0)
    outcome = ses_against(base, read_timeout=0.2).send(message(), to="ann@example.com", sender=SENDER)
    assert outcome.status == "unknown"
    assert "ReadTimeoutError" in outcome.detail
    assert len(recorder.requests) == 1


def test_ses_endpoint_down_is_refused(aws_env: None) -> None:
    outcome = ses_against(f"http://127.0.0.1:{closed_port()}").send(message(), to="ann@example.com", sender=SENDER)
    assert outcome.status == "refused"
    assert "EndpointConnectionError" in outcome.detail
