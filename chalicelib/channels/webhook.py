"""Webhook steps: POST a JSON body to a marketer-configured URL, and sort the answer into an outcome.

How HTTP answers map (same meaning as for SES, see `outcome`):

- 2xx → ``sent``;
- 408, 429, 503 → ``refused``: the receiver says it did not take the request, try later;
- 3xx and other 4xx → ``rejected``: redirects are not followed (a POST must not silently turn into
  a GET elsewhere), and a 4xx will fail again;
- other 5xx → ``unknown``: the receiver may have acted before failing; not retried;
- connection refused, DNS failure, connect timeout → ``refused`` (nothing was delivered); an
  invalid TLS certificate → ``rejected``; a timeout or disconnect while waiting for the answer →
  ``unknown``;
- a URL that is not http(s) → ``rejected`` without any request.

No address filtering is done here: a URL pointing at a private address (SSRF) must be refused when
the flow is validated or by the network the worker runs in.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from chalicelib.channels.outcome import SendOutcome

USER_AGENT = "Floe-Webhook/1"
_REFUSED_STATUSES = frozenset({408, 429, 503})
_MAX_DETAIL = 200


class Opener(Protocol):
    def open(self, fullurl: urllib.request.Request, data: None = None, timeout: float = ...) -> Any: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        # Returning None makes urllib raise the 3xx as an HTTPError, which we report as rejected.
        return None


def default_opener() -> urllib.request.OpenerDirector:
    """urllib's usual opener (proxies from the environment, HTTPS) minus redirect following."""
    return urllib.request.build_opener(_NoRedirect)


def outcome_for_status(status: int, reason: str = "") -> SendOutcome:
    detail = f"HTTP {status} {reason}".strip()
    if 200 <= status < 300:
        return SendOutcome("sent", detail=detail)
    if status in _REFUSED_STATUSES:
        return SendOutcome("refused", detail=detail)
    if status < 500:
        return SendOutcome("rejected", detail=detail)
    return SendOutcome("unknown", detail=detail)


class WebhookCaller:
    """POSTs JSON to webhook URLs. ``timeout`` is urllib's per socket operation, not a total."""

    def __init__(self, *, timeout: float = 5.0, opener: Opener | None = None) -> None:
        self._timeout = timeout
        self._opener: Opener = opener or default_opener()

    def call(self, url: str, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None) -> SendOutcome:
        """POST ``body`` as JSON once. Never raises for a failed call; a non-JSON body is a bug and does."""
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            # urllib would happily open file:// and ftp:// URLs.
            return SendOutcome("rejected", detail=f"not an http(s) URL: {url[:_MAX_DETAIL]}")
        data = json.dumps(body, separators=(",", ":"), default=str).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                # Drain a little so the receiver is not cut off mid-answer; we do not use the body.
                response.read(65536)
                return outcome_for_status(response.status, response.reason or "")
        except urllib.error.HTTPError as exc:
            with exc:
                return outcome_for_status(exc.code, str(exc.reason or ""))
        except urllib.error.URLError as exc:
            # urllib wraps errors raised while connecting and sending the request. The body is small
            # enough to sit in the socket buffer, so a timeout here is a connect timeout.
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                return SendOutcome("rejected", detail=f"TLS: {reason}"[:_MAX_DETAIL])
            return SendOutcome("refused", detail=f"{type(reason).__name__}: {reason}"[:_MAX_DETAIL])
        except (TimeoutError, http.client.HTTPException, OSError) as exc:
            # Raised while waiting for or reading the answer: the request was delivered.
            return SendOutcome("unknown", detail=f"{type(exc).__name__}: {exc}"[:_MAX_DETAIL])
