"""Bodies that route modules need when they are imported (to check requests and name types), kept
apart from `api.schemas` so that importing the app does not build the flow language's models; the
schemas module re-exports them for /openapi.json.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, Field

from chalicelib.schema import Model

ParticipantStatus = Literal["starting", "active", "waiting", "completed", "exited", "failed"]

FormKey = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="1-64 letters, digits, `-` or `_`.")


class TraceEntry(Model):
    at: dt.datetime
    step: str | None
    event: str
    detail: str


class FormRequest(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    key: str = FormKey
    name: str | None = Field(None, min_length=1, max_length=200, description="Defaults to the key.")
    owner_email: str | None = Field(
        None, max_length=254, description="The salesperson new contacts from this form are assigned to."
    )


class FormChange(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    owner_email: str | None = Field(None, max_length=254, description="Null or absent: no owner.")
