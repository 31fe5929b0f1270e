"""SMS through SNS, and the conservative phone-number normaliser that decides who can get one.

``phonenumbers`` is not a dependency, so `normalize_phone` does not guess: it accepts only numbers
that already carry their country code (``+31 6 1234 5678``, ``0031 6 12345678``) and returns None
for national formats (``06 12345678``). A wrong guess of the country would text a stranger; a
None means "no usable number", which the send step records as a skip.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from chalicelib.channels.outcome import SEND_ERRORS, SendOutcome, classify

# Separators people type inside numbers; NBSP and thin spaces come from copy-pasted documents.
_SEPARATORS = re.compile(r"[\s\-./()\u00a0\u2009\u202f]")
# "+44 (0)20 ...": the bracketed trunk zero is dialled nationally only and must go.
_TRUNK_ZERO = re.compile(r"^(\+\d{1,3})\s*\(0\)")
# E.164: a country code never starts with 0; at most 15 digits; 8 is the shortest we accept.
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def normalize_phone(raw: str, default_region: str | None = None) -> str | None:
    """``raw`` as E.164 (``+31612345678``), or None when it is not clearly an international number.

    ``default_region`` is accepted for the day a real parser replaces this one; it is ignored now,
    on purpose (see the module docstring).
    """
    del default_region
    number = _TRUNK_ZERO.sub(r"\1", raw.strip())
    number = _SEPARATORS.sub("", number)
    if number.startswith("00"):
        number = "+" + number[2:]
    return number if _E164.match(number) else None


class SnsSmsSender:
    """Sends SMS with SNS ``Publish`` to a phone number.

    ``client`` is a ``boto3.client("sns", config=no_retry_config())``: SDK retries must be off,
    for the same at-most-once reason as email.
    """

    def __init__(
        self,
        client: Any,
        *,
        sender_id: str | None = None,
        sms_type: Literal["Promotional", "Transactional"] = "Promotional",
    ) -> None:
        self._client = client
        self._sender_id = sender_id
        self._sms_type = sms_type

    def send(self, phone: str, text: str) -> SendOutcome:
        """Send once to an E.164 number. Never raises for a failed send."""
        attributes: dict[str, dict[str, str]] = {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": self._sms_type},
        }
        if self._sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": self._sender_id}
        try:
            response = self._client.publish(PhoneNumber=phone, Message=text, MessageAttributes=attributes)
        except SEND_ERRORS as exc:
            return classify(exc)
        return SendOutcome("sent", message_id=response.get("MessageId"))
