"""The named errors of the engine, and how each reaches the state machine or the API.

Step errors become task failures whose names the compiled state machine knows: `Floe.Retryable` is
retried with backoff, `Floe.Exit` leaves the flow quietly, anything else is recorded as a failure.
"Skipped, because …" is not an error: step handlers return it as a result.
"""

from __future__ import annotations

from typing import Any

from chalice.app import ChaliceUnhandledError


class RetryableStepError(Exception):
    """Nothing happened and trying later may work (throttling, a webhook answering 503)."""

    error_name = "Floe.Retryable"


class PermanentStepError(Exception):
    """The step cannot be done; the participant is marked failed with this reason."""

    error_name = "Floe.StepFailed"


class ParticipantLeft(Exception):
    """The participant leaves the flow before this step: goal met, filter no longer matches, flow ended."""

    error_name = "Floe.Exit"

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ApiError(ChaliceUnhandledError):
    """An error answered to an API caller as `{"error": {"code", "message", "details"}}`.

    Chalice turns any other exception raised in a view into its own 500 before HTTP middleware
    runs; this base lets `api.http.errors_as_json` map these to their 4xx answers in one place.
    """

    status = 400

    def __init__(self, code: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Unprocessable(ApiError):
    status = 422


class PayloadTooLarge(ApiError):
    status = 413
