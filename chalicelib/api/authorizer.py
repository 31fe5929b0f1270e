"""The API key authorizer: a Chalice built-in authorizer, run by API Gateway in AWS and by Chalice's
local gateway in the local stack and the tests.

It only authenticates (which live key is this, with which role); what the role may do is checked
per operation by `api.http`, so a forbidden call is a 403 in our error shape and changes nothing.
Results are cached by API Gateway for `CACHE_SECONDS`, which bounds how long a revoked key works.
"""

from __future__ import annotations

from chalice import AuthResponse, Blueprint
from chalice.app import AuthRequest

from chalicelib.bootstrap import runtime

bp = Blueprint(__name__)
CACHE_SECONDS = 60


class Unauthorized(Exception):
    """API Gateway answers 401 when a Lambda authorizer fails with exactly this message."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


@bp.authorizer(ttl_seconds=CACHE_SECONDS)
def api_key(auth_request: AuthRequest) -> AuthResponse:
    key = runtime().keys.verify(auth_request.token or "")
    if key is None:
        raise Unauthorized()
    return AuthResponse(routes=["*"], principal_id=key.key_id, context={"role": key.role, "key_id": key.key_id})
