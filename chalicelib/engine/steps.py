"""The step worker: does what one callback task of a flow's state machine asks, then answers it.

Before every action the participant is checked again against the world as it is now: still in the
flow, flow not ended, contact still there, success criteria not yet met, entry filter still true.
Sends claim their slot first (see `Claims`), so a redelivered task never sends twice; a definite
refusal is retried by the state machine, an ambiguous failure is recorded and never resent.
Everything the worker decides lands in the participant's trace with its reason.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
from dataclasses import dataclass
from typing import Any, Literal, assert_never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from chalicelib import metrics
from chalicelib.channels.email import build_message
from chalicelib.channels.outcome import SendOutcome
from chalicelib.channels.sms import normalize_phone
from chalicelib.channels.templates import TemplateError, html_to_text, render_html, render_text, track_links
from chalicelib.contacts.conditions import evaluate, explain
from chalicelib.contacts.input import InputError
from chalicelib.contacts.model import Contact, Facts
from chalicelib.engine.contacts import loose_write
from chalicelib.engine.errors import ParticipantLeft, PermanentStepError, RetryableStepError
from chalicelib.engine.ports import Runtime
from chalicelib.flows.graph import resolve
from chalicelib.flows.model import (
    Branch,
    End,
    Flow,
    Goto,
    Notify,
    SendEmail,
    SendSms,
    Step,
    UpdateContact,
    Wait,
    WaitFor,
    WaitUntil,
    Webhook,
)
from chalicelib.logs import logger
from chalicelib.storage.models import ParticipantModel
from chalicelib.storage.repos import TERMINAL, Claims, Move, to_contact

# Why a message was not sent, as a short stable code: the metrics' `reason` and the log's `code`. The
# sentence next to it is what the participant's trace and the contact's timeline show.
SkipCode = Literal["no_email", "email_unsubscribed", "no_phone", "sms_unsubscribed", "no_owner", "template_error"]

CHANNELS: dict[type, str] = {SendEmail: "email", SendSms: "sms", Notify: "notify", Webhook: "webhook"}


class Ids(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    flow_id: str
    version: int
    contact_id: str
    participant_id: str


class TaskMessage(BaseModel):
    """The body the compiled state machine puts on the steps queue."""

    model_config = ConfigDict(defer_build=True, extra="ignore")
    kind: Literal["step", "failure"]
    task_token: str
    ids: Ids
    execution: str = ""
    step: str | None = None
    entered: str = ""
    retry: int = 0
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Ctx:
    msg: TaskMessage
    participant: ParticipantModel
    flow: Flow
    contact: Contact
    facts: Facts
    now: dt.datetime

    @property
    def claim_id(self) -> str:
        # One slot per visit of a step: `entered` tells loop iterations apart, `retry` lets the state
        # machine's retry after a definite refusal claim afresh.
        ids = self.msg.ids
        return f"{ids.flow_id}#{ids.participant_id}#{self.msg.step}#{self.msg.entered}#{self.msg.retry}"


def entry(now: dt.datetime, step: str | None, event: str, detail: str = "") -> dict[str, Any]:
    return {"at": now.isoformat(), "step": step, "event": event, "detail": detail}


def engagement_facts(marks: set[str] | None) -> frozenset[tuple[str, str]]:
    out = set()
    for mark in marks or ():
        event, _, target = mark.partition(":")
        out.add((event, target))
    return frozenset(out)


def timestamp(moment: dt.datetime) -> str:
    # Step Functions' TimestampPath wants RFC 3339 in UTC with a `Z`.
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StepWorker:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._flows: dict[tuple[str, int], Flow] = {}

    # --- entry point ---------------------------------------------------------------------------

    def handle(self, body: dict[str, Any]) -> None:
        msg = TaskMessage.model_validate(body)
        ids = msg.ids
        logger.append_keys(
            flow_id=ids.flow_id,
            version=ids.version,
            contact_id=ids.contact_id,
            participant_id=ids.participant_id,
            execution=msg.execution,
            step=msg.step,
        )
        if msg.kind == "failure":
            self._record_failure(msg)
            return
        now = self._rt.clock()
        try:
            output = self._run(msg, now)
        except ParticipantLeft as left:
            self._rt.participants.record(
                ids.flow_id,
                ids.participant_id,
                trace=[entry(now, msg.step, left.status, left.reason)],
                status=left.status,
                reason=left.reason,
                only_if_open=True,
            )
            logger.info("participant left", extra={"status": left.status, "reason": left.reason})
            self._rt.tasks.fail(msg.task_token, error=left.error_name, cause=left.reason)
        except RetryableStepError as exc:
            self._rt.participants.record(
                ids.flow_id, ids.participant_id, trace=[entry(now, msg.step, "retrying", str(exc))]
            )
            logger.warning("step will be retried", extra={"detail": str(exc)})
            self._rt.tasks.fail(msg.task_token, error=exc.error_name, cause=str(exc))
        except PermanentStepError as exc:
            logger.error("step failed", extra={"detail": str(exc)})
            self._rt.tasks.fail(msg.task_token, error=exc.error_name, cause=str(exc))
        else:
            if output is not None:
                self._rt.tasks.succeed(msg.task_token, output)

    def _record_failure(self, msg: TaskMessage) -> None:
        error = msg.error or {}
        reason = f"{error.get('Error') or 'error'}: {error.get('Cause') or 'no detail'}"[:500]
        now = self._rt.clock()
        recorded = self._rt.participants.record(
            msg.ids.flow_id,
            msg.ids.participant_id,
            trace=[entry(now, None, "failed", reason)],
            status="failed",
            reason=reason,
            only_if_open=True,
        )
        if recorded:
            # Counted once: a redelivered failure message finds the participant closed already.
            metrics.step_failure(str(error.get("Error") or "error"))
        logger.error("participant failed", extra={"reason": reason})
        self._rt.tasks.succeed(msg.task_token, {})

    # --- the checks before every action ---------------------------------------------------------

    def _flow(self, flow_id: str, version: int) -> Flow:
        key = (flow_id, version)
        if key not in self._flows:
            published = self._rt.flows.version(flow_id, version)
            if published is None:
                raise PermanentStepError(f"version {version} of flow {flow_id} does not exist")
            self._flows[key] = Flow.model_validate(published.document)
        return self._flows[key]

    def _run(self, msg: TaskMessage, now: dt.datetime) -> dict[str, Any] | None:
        ids = msg.ids
        # One request for all three: what the checks below read must be as fresh as possible.
        participant, flow_item, contact_item = self._rt.participants.snapshot(
            ids.flow_id, ids.participant_id, ids.contact_id
        )
        if participant is None:
            raise ParticipantLeft("exited", "participant_deleted")
        if participant.status in TERMINAL:
            raise ParticipantLeft(participant.status, participant.reason or "the participant left the flow")
        if flow_item is None or flow_item.status == "ended":
            raise ParticipantLeft("exited", "flow_ended")
        flow = self._flow(ids.flow_id, ids.version)
        if msg.step is None or msg.step not in flow.by_id:
            raise PermanentStepError(f"step {msg.step!r} is not in version {ids.version}")
        step = flow.step(msg.step)
        self._note_timeout(msg, participant, flow, now)
        if contact_item is None:
            raise ParticipantLeft("exited", "contact_deleted")
        contact = to_contact(contact_item)
        facts = Facts(
            contact,
            engagement=engagement_facts(participant.engagement),
            forms_submitted=frozenset(contact_item.forms_submitted or ()),
        )
        ctx = Ctx(msg, participant, flow, contact, facts, now)
        if not isinstance(step, End):
            for goal in flow.goals:
                if goal.exit and evaluate(goal.condition, facts):
                    raise ParticipantLeft("completed", f"goal:{goal.id}")
            if flow.filter is not None:
                ok, why = explain(flow.filter, facts)
                if not ok:
                    raise ParticipantLeft("exited", f"filter_no_longer_matches: {why}")
        return self._step(step, ctx)

    def _note_timeout(self, msg: TaskMessage, participant: ParticipantModel, flow: Flow, now: dt.datetime) -> None:
        """Say in the trace that a `wait_for` timed out: the state machine takes that path on its own."""
        waited = flow.by_id.get(participant.current_step or "")
        if participant.status != "waiting" or not isinstance(waited, WaitFor):
            return
        target = waited.form if waited.event == "form_submitted" else waited.step
        if f"{waited.event}:{target}" in (participant.engagement or set()):
            return
        if msg.step != resolve(flow, waited.timeout_next):
            return
        ids = msg.ids
        # The parked token has expired with the timeout; an event arriving now must not look for it.
        key = self._rt.waits.key(waited.event, str(target), ids.flow_id, ids.participant_id)
        for parked in self._rt.waits.find(ids.contact_id, key):
            self._rt.waits.remove(parked)
        self._rt.participants.record(
            ids.flow_id,
            ids.participant_id,
            trace=[entry(now, waited.id, "timeout", f"no {waited.event} {target} in time → {msg.step}")],
            status="active",
            current_step=msg.step,
            only_if_open=True,
        )

    # --- one handler per step type ----------------------------------------------------------------

    def _update_contact(self, step: UpdateContact, ctx: Ctx) -> None:
        try:
            write = loose_write(step.set, self._rt.fields.definitions(), phone_region=self._rt.settings.phone_region)
        except InputError as exc:
            raise PermanentStepError(f"cannot update the contact: {exc}") from None
        write.add_tags = set(step.add_tags) or None
        write.remove_tags = set(step.remove_tags) or None
        self._rt.contacts.update(ctx.contact.contact_id, write)

    def _step(self, step: Step, ctx: Ctx) -> dict[str, Any] | None:
        match step:
            case SendEmail():
                return self._send_email(step, ctx)
            case SendSms():
                return self._send_sms(step, ctx)
            case Notify():
                return self._notify(step, ctx)
            case Webhook():
                return self._webhook(step, ctx)
            case UpdateContact():
                self._update_contact(step, ctx)
                return self._advance(ctx, step.next, [entry(ctx.now, step.id, "updated", _describe_update(step))])
            case Branch():
                return self._branch(step, ctx)
            case WaitUntil():
                return self._wait_until(step, ctx)
            case WaitFor():
                return self._wait_for(step, ctx)
            case End():
                self._rt.participants.record(
                    ctx.msg.ids.flow_id,
                    ctx.msg.ids.participant_id,
                    trace=[entry(ctx.now, step.id, "completed", "reached the end")],
                    status="completed",
                    reason="end",
                    current_step=step.id,
                    only_if_open=True,
                )
                return {}
            case Wait() | Goto():
                raise PermanentStepError(f"a {step.type} step runs in the state machine, not in the worker")
            case _:
                assert_never(step)

    def _advance(
        self,
        ctx: Ctx,
        next_id: str,
        trace: list[dict[str, Any]],
        *,
        last_message: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record what happened and where the participant goes next; the task's answer."""
        self._rt.participants.record(
            ctx.msg.ids.flow_id, ctx.msg.ids.participant_id, **self._moved(ctx, next_id, trace, last_message)
        )
        return output if output is not None else {}

    def _moved(
        self, ctx: Ctx, next_id: str, trace: list[dict[str, Any]], last_message: dict[str, Any] | None = None
    ) -> Move:
        """How the participant item changes when it moves on to `next_id`."""
        target = resolve(ctx.flow, next_id)
        nxt = ctx.flow.step(target)
        status = "active"
        if isinstance(nxt, Wait):
            status = "waiting"
            seconds = max(1, round(nxt.duration.total_seconds * self._rt.settings.time_scale))
            trace = [
                *trace,
                entry(ctx.now, target, "waiting", f"until {timestamp(ctx.now + dt.timedelta(seconds=seconds))}"),
            ]
        return {
            "trace": trace,
            "status": status,
            "current_step": target,
            "last_message": last_message,
            "only_if_open": True,
        }

    # --- messages ----------------------------------------------------------------------------------

    def _skip(
        self, ctx: Ctx, step: SendEmail | SendSms | Notify | Webhook, code: SkipCode, reason: str
    ) -> dict[str, Any]:
        logger.info("step skipped", extra={"code": code, "reason": reason})
        metrics.skip(CHANNELS[type(step)], code)
        return self._advance(ctx, step.next, [entry(ctx.now, step.id, "skipped", reason)])

    def _claimed(self, ctx: Ctx, channel: str) -> Any:
        claim = self._rt.claims.claim(ctx.claim_id, channel)
        if claim is None:
            previous = self._rt.claims.get(ctx.claim_id)
            if previous is not None and previous.status == "refused":
                raise RetryableStepError(f"{channel} was refused before: {previous.detail}")
        return claim

    def _settle(
        self, ctx: Ctx, step: SendEmail | SendSms | Notify | Webhook, claim: Any, channel: str, outcome: SendOutcome
    ) -> dict[str, Any]:
        settlement = Claims.settlement(outcome.status, message_id=outcome.message_id, detail=outcome.detail)
        # Counted here, once per claimed send: a redelivered task finds its claim and never gets this far.
        metrics.send(channel, outcome.status)
        if outcome.status == "refused":
            claim.update(actions=settlement)
            raise RetryableStepError(f"{channel} refused for now: {outcome.detail}")
        message = {
            "step": step.id,
            "channel": channel,
            "at": ctx.now.isoformat(),
            "status": outcome.status,
            "message_id": outcome.message_id,
        }
        event = {"sent": "sent", "rejected": "not_sent", "unknown": "send_unknown"}[outcome.status]
        detail = outcome.detail or (f"message {outcome.message_id}" if outcome.message_id else "")
        logger.info("message " + event, extra={"channel": channel, "message_id": outcome.message_id})
        moved = self._moved(ctx, step.next, [entry(ctx.now, step.id, event, detail)], message)
        # The claim's outcome and the participant's record land together, in one request.
        self._rt.participants.record_with_claim(
            claim, settlement, ctx.msg.ids.flow_id, ctx.msg.ids.participant_id, **moved
        )
        return {}

    def _duplicate(self, ctx: Ctx, step: SendEmail | SendSms | Notify | Webhook) -> dict[str, Any]:
        # This visit was claimed by an earlier delivery of the same task: never send again.
        return self._advance(ctx, step.next, [entry(ctx.now, step.id, "duplicate", "already handled; not sent again")])

    def _links(self, ctx: Ctx, step_id: str) -> tuple[str, str, Any]:
        ids = ctx.msg.ids
        base = self._rt.settings.public_url
        signer = self._rt.links
        common = {"p": ids.participant_id, "f": ids.flow_id, "s": step_id, "c": ids.contact_id}
        unsubscribe = f"{base}/u/{signer.sign({'c': ids.contact_id, 'ch': 'email', 'p': ids.participant_id})}"
        pixel = f"{base}/t/o/{signer.sign({**common, 'k': 'o'})}"

        def click(url: str) -> str | None:
            if url == unsubscribe:
                return None
            return f"{base}/t/c/{signer.sign({**common, 'k': 'c', 'u': url})}"

        return unsubscribe, pixel, click

    def _send_email(self, step: SendEmail, ctx: Ctx) -> dict[str, Any]:
        contact = ctx.contact
        if not contact.email:
            return self._skip(ctx, step, "no_email", "the contact has no email address")
        if "email" in contact.unsubscribed:
            return self._skip(ctx, step, "email_unsubscribed", "the contact unsubscribed from email")
        unsubscribe, pixel, click = self._links(ctx, step.id)
        context = {"contact": contact.template_context(), "unsubscribe_url": unsubscribe}
        try:
            subject = render_text(step.subject, context)
            body = track_links(render_html(step.html, context), click)
            text = render_text(step.text, context) if step.text else html_to_text(body)
        except TemplateError as exc:
            return self._skip(ctx, step, "template_error", f"the template cannot be rendered: {exc}")
        body = _with_footer(body, unsubscribe, pixel)
        text = f"{text}\n\nUnsubscribe: {unsubscribe}\n"
        claim = self._claimed(ctx, "email")
        if claim is None:
            return self._duplicate(ctx, step)
        raw = build_message(
            sender=self._rt.settings.sender,
            to=contact.email,
            subject=subject,
            html=body,
            text=text,
            unsubscribe_url=unsubscribe,
            headers={
                "X-Floe-Flow": ctx.msg.ids.flow_id,
                "X-Floe-Participant": ctx.msg.ids.participant_id,
                "X-Floe-Step": step.id,
            },
        )
        outcome = self._rt.email.send(
            raw,
            to=contact.email,
            sender=self._rt.settings.sender,
            tags={"flow": ctx.msg.ids.flow_id, "step": step.id},
        )
        return self._settle(ctx, step, claim, "email", outcome)

    def _send_sms(self, step: SendSms, ctx: Ctx) -> dict[str, Any]:
        contact = ctx.contact
        phone = normalize_phone(contact.phone or "")
        if phone is None:
            return self._skip(ctx, step, "no_phone", "the contact has no valid international phone number")
        if "sms" in contact.unsubscribed:
            return self._skip(ctx, step, "sms_unsubscribed", "the contact unsubscribed from SMS")
        try:
            text = render_text(step.text, {"contact": contact.template_context()})
        except TemplateError as exc:
            return self._skip(ctx, step, "template_error", f"the template cannot be rendered: {exc}")
        claim = self._claimed(ctx, "sms")
        if claim is None:
            return self._duplicate(ctx, step)
        return self._settle(ctx, step, claim, "sms", self._rt.sms.send(phone, text))

    def _notify(self, step: Notify, ctx: Ctx) -> dict[str, Any]:
        to = ctx.contact.owner_email if step.to == "owner" else step.to
        if not to:
            return self._skip(ctx, step, "no_owner", "the contact has no owner to alert")
        context = {"contact": ctx.contact.template_context()}
        try:
            subject = render_text(step.subject, context)
            text = render_text(step.text, context)
        except TemplateError as exc:
            return self._skip(ctx, step, "template_error", f"the template cannot be rendered: {exc}")
        claim = self._claimed(ctx, "notify")
        if claim is None:
            return self._duplicate(ctx, step)
        raw = build_message(
            sender=self._rt.settings.sender,
            to=to,
            subject=subject,
            text=text,
            html=f"<pre>{html_lib.escape(text)}</pre>",
            unsubscribe_url=None,
            headers={"X-Floe-Flow": ctx.msg.ids.flow_id, "X-Floe-Step": step.id},
        )
        outcome = self._rt.email.send(raw, to=to, sender=self._rt.settings.sender)
        return self._settle(ctx, step, claim, "notify", outcome)

    def _webhook(self, step: Webhook, ctx: Ctx) -> dict[str, Any]:
        claim = self._claimed(ctx, "webhook")
        if claim is None:
            return self._duplicate(ctx, step)
        ids = ctx.msg.ids
        body = {
            "event": "flow.step",
            "flow_id": ids.flow_id,
            "step": step.id,
            "participant_id": ids.participant_id,
            "contact": {"id": ids.contact_id, **ctx.contact.template_context()},
            "payload": step.payload,
        }
        # Receivers can drop a repeat of the same call by this key.
        outcome = self._rt.webhooks.call(str(step.url), body, headers={"Idempotency-Key": ctx.claim_id})
        return self._settle(ctx, step, claim, "webhook", outcome)

    # --- decisions and waits --------------------------------------------------------------------

    def _branch(self, step: Branch, ctx: Ctx) -> dict[str, Any]:
        """Decide a whole chain of branches at once; the route is the first step that is no branch."""
        trace = []
        current: Step = step
        while isinstance(current, Branch):
            ok, why = explain(current.condition, ctx.facts)
            target = resolve(ctx.flow, current.yes if ok else current.no)
            trace.append(entry(ctx.now, current.id, "branch", f"{'yes' if ok else 'no'} → {target}: {why}"))
            current = ctx.flow.step(target)
        return self._advance(ctx, current.id, trace, output={"route": current.id})

    def _wait_until(self, step: WaitUntil, ctx: Ctx) -> dict[str, Any]:
        target, note = _moment(step, ctx.contact, ctx.now)
        seconds = max(0.0, (target - ctx.now).total_seconds()) * self._rt.settings.time_scale
        until = ctx.now + dt.timedelta(seconds=seconds)
        self._rt.participants.record(
            ctx.msg.ids.flow_id,
            ctx.msg.ids.participant_id,
            trace=[entry(ctx.now, step.id, "waiting", f"until {timestamp(until)} ({note})")],
            status="waiting",
            current_step=step.id,
            only_if_open=True,
        )
        return {"until": timestamp(until)}

    def _wait_for(self, step: WaitFor, ctx: Ctx) -> dict[str, Any] | None:
        ids = ctx.msg.ids
        target = step.form if step.event == "form_submitted" else step.step
        assert target is not None
        mark = f"{step.event}:{target}"
        if mark in (ctx.participant.engagement or set()):
            return self._advance(ctx, step.next, [entry(ctx.now, step.id, "event", f"{mark} had happened already")])
        key = self._rt.waits.key(step.event, target, ids.flow_id, ids.participant_id)
        self._rt.waits.park(ids.contact_id, key, ctx.msg.task_token)
        self._rt.participants.record(
            ids.flow_id,
            ids.participant_id,
            trace=[entry(ctx.now, step.id, "waiting", f"for {step.event} {target}")],
            status="waiting",
            current_step=step.id,
            only_if_open=True,
        )
        # The event may have come while the token was being parked; look once more.
        again = self._rt.participants.get(ids.flow_id, ids.participant_id)
        if again is not None and mark in (again.engagement or set()):
            for parked in self._rt.waits.find(ids.contact_id, key):
                self._rt.waits.remove(parked)
            return self._advance(ctx, step.next, [entry(ctx.now, step.id, "event", mark)])
        return None


def _describe_update(step: UpdateContact) -> str:
    parts = (
        [f"set {k}" for k in step.set] + [f"+tag {t}" for t in step.add_tags] + [f"-tag {t}" for t in step.remove_tags]
    )
    return ", ".join(parts)


def _with_footer(body: str, unsubscribe: str, pixel: str) -> str:
    footer = (
        f'<p style="font-size:12px;color:#777"><a href="{html_lib.escape(unsubscribe)}">Unsubscribe</a></p>'
        f'<img src="{html_lib.escape(pixel)}" width="1" height="1" alt="">'
    )
    lower = body.lower()
    at = lower.rfind("</body>")
    return body[:at] + footer + body[at:] if at >= 0 else body + footer


def _zone(contact: Contact) -> dt.tzinfo:
    try:
        return ZoneInfo(contact.timezone) if contact.timezone else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _moment(step: WaitUntil, contact: Contact, now: dt.datetime) -> tuple[dt.datetime, str]:
    """When a `wait_until` ends: the date (or the contact's date field) at the time of day in the contact's zone.

    A date field in the past means its next anniversary (birthdays); a missing or unreadable field
    ends the wait at once, with the reason in the trace.
    """
    zone = _zone(contact)
    hour, minute = (int(x) for x in step.time_of_day.split(":"))
    if step.date is not None:
        day = step.date
        anniversary = False
    else:
        raw = contact.get(step.field or "")
        try:
            day = dt.date.fromisoformat(str(raw)[:10])
        except ValueError:
            return now, f"{step.field} holds no date"
        anniversary = True
    moment = dt.datetime.combine(day, dt.time(hour, minute), zone)
    if anniversary:
        year = now.astimezone(zone).year
        while moment < now:
            moment = _same_day_in(day, year, hour, minute, zone)
            year += 1
    note = f"{moment.isoformat()} in {getattr(zone, 'key', 'UTC')}"
    return max(moment, now), note


def _same_day_in(day: dt.date, year: int, hour: int, minute: int, zone: dt.tzinfo) -> dt.datetime:
    try:
        shifted = day.replace(year=year)
    except ValueError:  # 29 February in a year without one
        shifted = dt.date(year, 2, 28)
    return dt.datetime.combine(shifted, dt.time(hour, minute), zone)
