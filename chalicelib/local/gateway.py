"""Chalice's local API gateway, answering like the deployed one (see `api.gateway`).

Chalice's local gateway lets an authorizer's failure escape as an exception and answers missing keys
and unknown routes in API Gateway's default bodies; the deployed stack maps both with gateway
responses, and this wrapper does the same here.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any

from chalice.local import (
    ChaliceRequestHandler,
    ForbiddenError,
    LocalGateway,
    LocalGatewayException,
    NotAuthorizedError,
)

from chalicelib.api.authorizer import Unauthorized
from chalicelib.api.gateway import GATEWAY_RESPONSES, body


class _Shaped(LocalGatewayException):
    def __init__(self, response_type: str, headers: Any) -> None:
        self.CODE = GATEWAY_RESPONSES[response_type][0]
        super().__init__({**(headers or {}), "Content-Type": "application/json"}, body(response_type).encode())


class Gateway(LocalGateway):
    def handle_request(self, method: str, path: str, headers: Any, body: Any) -> Any:
        try:
            return super().handle_request(method, path, headers, body)
        except Unauthorized:
            raise _Shaped("UNAUTHORIZED", {}) from None
        except NotAuthorizedError as exc:
            raise _Shaped("UNAUTHORIZED", exc.headers) from None
        except ForbiddenError as exc:
            # An unknown route is "Missing Authentication Token", or a signature complaint when the
            # request carries an Authorization header; both are a 404 for our clients.
            said = exc.body or b""
            unknown = b"Missing Authentication Token" in said or b"'Credential'" in said
            kind = "MISSING_AUTHENTICATION_TOKEN" if unknown else "ACCESS_DENIED"
            raise _Shaped(kind, exc.headers) from None


class RequestHandler(ChaliceRequestHandler):
    """The local server's request handler, with the shaped gateway."""

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any) -> None:
        self.local_gateway = Gateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)


def shape_test_client(client: Any) -> Any:
    """Give a `chalice.test.Client` the shaped gateway; returns the client."""
    http = client.http
    http._local_gateway = Gateway(http._app, http._config)
    return client
