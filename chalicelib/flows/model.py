"""The flow document: trigger, entry filter, re-entry rule, success criteria and a graph of steps.

Steps are a union discriminated on `type`. Adding a step type is one class here, one case in
`outgoing` below, one in the compiler's lowering and one step handler; every dispatch over the union
ends in `assert_never`, so mypy names each place a new type must be handled.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, assert_never

from pydantic import ConfigDict, Field, HttpUrl, model_validator

from chalicelib.contacts.conditions import Condition
from chalicelib.schema import Model

StepId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="Unique within the flow.")]


class _Doc(Model):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)


class Duration(_Doc):
    days: int = Field(0, ge=0, le=3650)
    hours: int = Field(0, ge=0, le=100_000)
    minutes: int = Field(0, ge=0, le=1_000_000)
    seconds: int = Field(0, ge=0, le=10_000_000)

    @property
    def total_seconds(self) -> int:
        return ((self.days * 24 + self.hours) * 60 + self.minutes) * 60 + self.seconds

    @model_validator(mode="after")
    def _positive(self) -> Duration:
        if self.total_seconds <= 0:
            raise ValueError("a duration must be longer than zero")
        return self


# --- triggers -------------------------------------------------------------------------------------


class FormSubmittedTrigger(_Doc):
    type: Literal["form_submitted"]
    form: str = Field(min_length=1, description="The key of the form whose submissions enroll.")


class ManualTrigger(_Doc):
    """Only `POST /flows/{id}/enrollments` enrolls contacts."""

    type: Literal["manual"]


Trigger = Annotated[FormSubmittedTrigger | ManualTrigger, Field(discriminator="type")]


def trigger_key(trigger: Trigger) -> str | None:
    """The key under which an active flow listens for its trigger; None for manual-only flows."""
    match trigger:
        case FormSubmittedTrigger(form=form):
            return f"form_submitted#{form}"
        case ManualTrigger():
            return None
        case _:
            assert_never(trigger)


# --- entry rules ------------------------------------------------------------------------------------


class Reentry(_Doc):
    """Whether a contact that left the flow may enter it again.

    `never`: once per contact. `always`: again after leaving. `after`: again once `after` has passed
    since the previous entry. A contact still in the flow never enters twice.
    """

    mode: Literal["never", "always", "after"] = "never"
    after: Duration | None = None

    @model_validator(mode="after")
    def _after_needs_duration(self) -> Reentry:
        if (self.mode == "after") != (self.after is not None):
            raise ValueError("`after` is required with mode 'after' and only then")
        return self


class Goal(_Doc):
    """A success criterion: met when the contact matches `condition`; `exit` makes the participant leave."""

    id: StepId
    condition: Condition
    exit: bool = True


# --- steps --------------------------------------------------------------------------------------------


class _Step(_Doc):
    id: StepId
    label: str | None = Field(None, max_length=200)


class SendEmail(_Step):
    type: Literal["send_email"]
    subject: str = Field(min_length=1, max_length=998)
    html: str = Field(min_length=1, max_length=200_000, description="Jinja template; links are tracked.")
    text: str | None = Field(None, max_length=200_000, description="Plain-text part; derived if absent.")
    next: StepId


class SendSms(_Step):
    type: Literal["send_sms"]
    text: str = Field(min_length=1, max_length=1600)
    next: StepId


class Wait(_Step):
    type: Literal["wait"]
    duration: Duration
    next: StepId


_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class WaitUntil(_Step):
    """Wait until a date (or the next anniversary of a date field) at a time of day in the contact's zone."""

    type: Literal["wait_until"]
    date: dt.date | None = None
    field: str | None = Field(None, description="A date field of the contact, e.g. `fields.birthday`.")
    time_of_day: str = Field("09:00", description="HH:MM in the contact's time zone.")
    next: StepId

    @model_validator(mode="after")
    def _one_source(self) -> WaitUntil:
        if (self.date is None) == (self.field is None):
            raise ValueError("give exactly one of `date` and `field`")
        if not _TIME.match(self.time_of_day):
            raise ValueError("time_of_day must be HH:MM")
        return self


class Branch(_Step):
    type: Literal["branch"]
    condition: Condition
    yes: StepId
    no: StepId


class WaitFor(_Step):
    """Wait for an event, at most `timeout`; continue at `next` when it happens, else at `timeout_next`."""

    type: Literal["wait_for"]
    event: Literal["opened", "clicked", "form_submitted"]
    step: StepId | None = Field(None, description="The message step, for `opened` and `clicked`.")
    form: str | None = Field(None, description="The form key, for `form_submitted`.")
    timeout: Duration
    next: StepId
    timeout_next: StepId

    @model_validator(mode="after")
    def _target(self) -> WaitFor:
        if self.event == "form_submitted" and (self.form is None or self.step is not None):
            raise ValueError("`form_submitted` needs `form` and no `step`")
        if self.event != "form_submitted" and (self.step is None or self.form is not None):
            raise ValueError(f"`{self.event}` needs `step` and no `form`")
        return self


class UpdateContact(_Step):
    type: Literal["update_contact"]
    set: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    add_tags: list[str] = Field(default_factory=list)
    remove_tags: list[str] = Field(default_factory=list)
    next: StepId

    @model_validator(mode="after")
    def _does_something(self) -> UpdateContact:
        if not (self.set or self.add_tags or self.remove_tags):
            raise ValueError("give at least one of `set`, `add_tags`, `remove_tags`")
        return self


class Notify(_Step):
    """An internal email: the alert to the salesperson who owns the contact, or to a fixed address."""

    type: Literal["notify"]
    to: str = Field(min_length=1, description="`owner` or an email address.")
    subject: str = Field(min_length=1, max_length=998)
    text: str = Field(min_length=1, max_length=100_000)
    next: StepId


class Webhook(_Step):
    type: Literal["webhook"]
    url: HttpUrl
    payload: dict[str, Any] = Field(default_factory=dict, description="Extra JSON sent with the contact.")
    next: StepId


class Goto(_Step):
    """A jump: continue at `target`. It compiles to no state of its own."""

    type: Literal["goto"]
    target: StepId


class End(_Step):
    type: Literal["end"]


Step = Annotated[
    SendEmail | SendSms | Wait | WaitUntil | Branch | WaitFor | UpdateContact | Notify | Webhook | Goto | End,
    Field(discriminator="type"),
]

MESSAGE_STEPS = (SendEmail, SendSms)
WAITING_STEPS = (Wait, WaitUntil, WaitFor)


def outgoing(step: Step) -> list[tuple[str, str]]:
    """The step's edges as (attribute, target id)."""
    match step:
        case SendEmail() | SendSms() | Wait() | WaitUntil() | UpdateContact() | Notify() | Webhook():
            return [("next", step.next)]
        case Branch():
            return [("yes", step.yes), ("no", step.no)]
        case WaitFor():
            return [("next", step.next), ("timeout_next", step.timeout_next)]
        case Goto():
            return [("target", step.target)]
        case End():
            return []
        case _:
            assert_never(step)


class Flow(_Doc):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    trigger: Trigger
    filter: Condition | None = Field(None, description="Who may enter; re-checked before every action.")
    reentry: Reentry = Reentry()
    goals: list[Goal] = Field(default_factory=list, description="Success criteria.")
    start_at: StepId
    steps: list[Step] = Field(min_length=1, max_length=500)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def by_id(self) -> dict[str, Step]:
        return {s.id: s for s in self.steps}
