"""What a send attempt came to, and the one place AWS errors are sorted into those outcomes.

Floe sends marketing messages at most once (DESIGN, "Sending exactly once"). So every failure is
sorted by one question: can the message have left?

- ``sent``: the service accepted it.
- ``refused``: it definitely was not sent and trying again later may work (throttling, quota,
  paused sending, the connection never opened). The state machine retries these.
- ``rejected``: it definitely was not sent and trying again will not help (bad address, unverified
  sender, suspended account, malformed request). Record and move on.
- ``unknown``: the request may have been processed (timeout while waiting for the answer,
  connection dropped mid-way, a 5xx). Never resend: a lost message is better than a duplicate.

The clients used for sending must have SDK retries off (`no_retry_config`), or botocore would
silently resend after an ambiguous failure, which SES cannot deduplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProxyConnectionError,
)

SendStatus = Literal["sent", "refused", "rejected", "unknown"]


@dataclass(frozen=True)
class SendOutcome:
    status: SendStatus
    message_id: str | None = None
    detail: str = ""


# Send errors the senders turn into outcomes; anything else is a bug and propagates.
SEND_ERRORS: tuple[type[BaseException], ...] = (ClientError, BotoCoreError)

# The service answered "not now": nothing was sent, a later attempt may go through.
# SendingPausedException is here because sending resumes when the account or configuration set
# is re-enabled; expired credentials are here because the next invocation gets fresh ones.
REFUSED_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",  # SNS
        "ThrottledException",
        "TooManyRequestsException",
        "LimitExceededException",  # SES v2: daily quota / sending rate
        "RequestLimitExceeded",
        "SlowDown",
        "SendingPausedException",
        "KMSThrottlingException",  # SNS with an encrypted topic
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)

# The service answered "never": nothing was sent and the same request will fail again.
REJECTED_CODES = frozenset(
    {
        "MessageRejected",
        "BadRequestException",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidParameterException",
        "ValidationError",
        "ValidationException",
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "NotFound",
        "EndpointDisabled",
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "OptedOut",
    }
)


def no_retry_config(*, connect_timeout: float = 5.0, read_timeout: float = 20.0) -> Config:
    """The botocore config for every client that sends: one attempt, never an SDK retry.

    ``total_max_attempts`` and not ``max_attempts``: in a client Config, botocore reads
    ``retries["max_attempts"]`` as the number of *retries* and adds one, so the often-quoted
    ``{"max_attempts": 1}`` still allows a second send (measured in tests/functional/test_channels.py).
    A short read timeout turns a hung call into an ``unknown`` outcome instead of a Lambda timeout.
    """
    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def classify(exc: BaseException) -> SendOutcome:
    """Sort an error raised by a boto3 send call into refused, rejected or unknown.

    Raises TypeError for anything that is not a botocore error: those are bugs, not send outcomes.
    """
    if isinstance(exc, ClientError):
        return _classify_client_error(exc)
    # The request never left the machine: the socket did not connect or DNS failed.
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ProxyConnectionError):
        return SendOutcome("refused", detail=f"{type(exc).__name__}: {exc}")
    # Raised before any request is signed, so nothing was sent.
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return SendOutcome("refused", detail=f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ParamValidationError):
        return SendOutcome("rejected", detail=f"{type(exc).__name__}: {exc}")
    # ReadTimeoutError, ConnectionClosedError, SSLError, HTTPClientError and whatever else: the
    # request may have reached the service, so it may have been sent.
    if isinstance(exc, BotoCoreError):
        return SendOutcome("unknown", detail=f"{type(exc).__name__}: {exc}")
    raise TypeError(f"not a send error: {exc!r}") from exc


def _classify_client_error(exc: ClientError) -> SendOutcome:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", ""))
    detail = f"{code}: {message}" if message else code
    status_code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # Codes first: some services throttle with a 5xx-looking status or a 400.
    if code in REFUSED_CODES or status_code == 429:
        return SendOutcome("refused", detail=detail)
    if code in REJECTED_CODES:
        return SendOutcome("rejected", detail=detail)
    if isinstance(status_code, int) and 400 <= status_code < 500:
        # Any other 4xx is a refusal by the service: not sent, and the same request fails again.
        return SendOutcome("rejected", detail=detail)
    # 5xx (InternalFailure, ServiceUnavailable, …) or no status at all: the service may have
    # accepted the message before failing, and SES has no idempotency key to make a retry safe.
    return SendOutcome("unknown", detail=detail)
