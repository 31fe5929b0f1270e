"""Who may do what: roles, the permissions they hold, and API key secrets.

The roles follow the functional rights marketers know from their tools: a flow administrator builds
and runs flows; a content editor maintains what flows send (emails, SMS texts, forms, templates) but
cannot delete it, change a flow or run one; an admin also manages API keys.

A key is `floe_<key id>_<secret>`. Only the SHA-256 of the secret is stored: the secret is 256
random bits, so a slow password hash would add nothing but latency to every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

Role = Literal["admin", "flow_admin", "content_editor"]
ROLES: tuple[Role, ...] = ("admin", "flow_admin", "content_editor")

Permission = Literal[
    "flows.view",
    "flows.edit",
    "flows.run",
    "content.edit",
    "content.delete",
    "contacts.view",
    "contacts.edit",
    "keys.manage",
]

_EDITOR: frozenset[Permission] = frozenset({"flows.view", "content.edit", "contacts.view"})
_FLOW_ADMIN: frozenset[Permission] = _EDITOR | {"flows.edit", "flows.run", "content.delete", "contacts.edit"}
GRANTS: dict[Role, frozenset[Permission]] = {
    "content_editor": _EDITOR,
    "flow_admin": _FLOW_ADMIN,
    # An admin can do everything a flow administrator can, and manages the API keys.
    "admin": _FLOW_ADMIN | {"keys.manage"},
}

PREFIX = "floe_"


def allowed(role: str | None, permission: Permission) -> bool:
    grants = GRANTS.get(role) if role in ROLES else None
    return grants is not None and permission in grants


def new_secret() -> tuple[str, str, str]:
    """(key id, full key to hand out once, hash to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(token: str) -> tuple[str, str] | None:
    """The key id and secret of `Bearer floe_<id>_<secret>` (or the bare key); None if malformed."""
    token = token.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(token) > 200:
        return None
    return key_id, secret


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
