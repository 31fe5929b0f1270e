"""Email: building the MIME message and sending it raw through SES v2.

We send ``Raw`` content rather than ``Simple`` because the headers must be ours: RFC 8058
one-click unsubscribe (which Gmail and Yahoo require of bulk senders), our correlation headers,
and a text part next to the HTML. It is also the only form whose headers moto keeps, so tests can
assert on them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from chalicelib.channels.outcome import SEND_ERRORS, SendOutcome, classify


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    html: str,
    text: str,
    unsubscribe_url: str | None,
    unsubscribe_post_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    date: dt.datetime | None = None,
) -> bytes:
    """A multipart/alternative (text, then HTML) message as bytes, ready for SES ``Raw`` content.

    ``unsubscribe_post_url`` is the HTTPS URL that accepts the RFC 8058 one-click POST; it goes in
    ``List-Unsubscribe`` and defaults to ``unsubscribe_url`` (our ``/u/{token}`` serves both the
    page and the POST). The body is expected to link to ``unsubscribe_url`` already (templates get
    it in their context). ``headers`` adds headers such as ``X-Floe-Participant``. ``date``
    defaults to now (UTC). SES replaces the Message-ID with its own; ours is there for the
    local outbox and for clients that read the raw file.
    """
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    # A subject is one line; a rendered one may carry a newline from contact data, and a newline
    # in a header is header injection (the email package would refuse it).
    msg["Subject"] = " ".join(subject.split())
    msg["Date"] = format_datetime(date or dt.datetime.now(dt.UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["MIME-Version"] = "1.0"
    if unsubscribe_url:
        # Internal alerts (to a salesperson) pass None: they are not marketing mail.
        msg["List-Unsubscribe"] = f"<{unsubscribe_post_url or unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (headers or {}).items():
        msg[name] = value
    # Quoted-printable keeps the message 7-bit clean whatever the language of the content, which
    # every relay accepts.
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


class SesEmailSender:
    """Sends raw messages through SES v2.

    ``client`` is a ``boto3.client("sesv2", config=no_retry_config())``: SDK retries must be off,
    because SES has no idempotency key and a retry after an ambiguous failure can send twice.
    """

    def __init__(self, client: Any, *, configuration_set: str | None) -> None:
        self._client = client
        self._configuration_set = configuration_set

    def send(
        self,
        raw: bytes,
        *,
        to: str,
        sender: str,
        tags: Mapping[str, str] | None = None,
    ) -> SendOutcome:
        """Send once. Never raises for a failed send; the outcome says whether it may have left.

        ``tags`` become SES message tags, which come back on bounce/complaint/delivery events
        (names and values: letters, digits, ``_``, ``-``, ``.``, ``@``; at most 256 characters).
        """
        kwargs: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [to]},
            "Content": {"Raw": {"Data": raw}},
        }
        if self._configuration_set:
            kwargs["ConfigurationSetName"] = self._configuration_set
        if tags:
            kwargs["EmailTags"] = [{"Name": name, "Value": value} for name, value in tags.items()]
        try:
            response = self._client.send_email(**kwargs)
        except SEND_ERRORS as exc:
            return classify(exc)
        return SendOutcome("sent", message_id=response.get("MessageId"))
