"""Signed tokens for tracking and unsubscribe links: ``<base64url JSON>.<base64url HMAC>``.

The payload is readable by anyone (it is only base64), but cannot be changed or forged without
the secret. Tokens never expire: an unsubscribe link must keep working for as long as the mail
sits in someone's inbox. Payload keys are kept to one or two letters because the token ends up in
every link of every message; callers use:

- tracking: ``{"p": participant_id, "f": flow_id, "s": step_id, "c": contact_id, "k": "o"|"c", "u": url}``
  (``k`` is "o" for the open pixel, "c" for a click; ``u`` only for clicks);
- unsubscribe: ``{"c": contact_id, "ch": "email"|"sms", "p": participant_id}``.

One secret signs both kinds, so a route must check the keys it needs (a tracking token has no
``ch``, an unsubscribe token no ``k``) before acting on a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

# 16 bytes (128 bits) of HMAC-SHA256 is ample against forgery and keeps links short.
_MAC_BYTES = 16
_MIN_SECRET_BYTES = 16


class BadToken(ValueError):
    """The token was tampered with, truncated, signed with another secret, or is not a token."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < _MIN_SECRET_BYTES:
            # A short or empty secret is a configuration mistake that would make every link forgeable.
            raise ValueError(f"link secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def sign(self, payload: dict[str, Any]) -> str:
        """A URL-safe token carrying the JSON-serialisable ``payload``."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        encoded = _b64encode(body.encode("utf-8"))
        return f"{encoded}.{self._mac(encoded)}"

    def verify(self, token: str) -> dict[str, Any]:
        """The payload of a token this signer made; BadToken for anything else."""
        if not isinstance(token, str) or not token.isascii() or token.count(".") != 1:
            raise BadToken("malformed token")
        encoded, mac = token.split(".")
        # Compare the MAC as text, not decoded bytes: base64 ignores stray low bits in the last
        # character, and the signed form should have exactly one spelling.
        if not hmac.compare_digest(mac, self._mac(encoded)):
            raise BadToken("bad signature")
        try:
            payload = json.loads(_b64decode(encoded).decode("utf-8"))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise BadToken("undecodable payload") from exc
        if not isinstance(payload, dict):
            raise BadToken("payload is not an object")
        return payload

    def _mac(self, encoded: str) -> str:
        digest = hmac.new(self._secret, encoded.encode("ascii"), hashlib.sha256).digest()
        return _b64encode(digest[:_MAC_BYTES])
