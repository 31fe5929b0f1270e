"""What happens outside a flow and moves people in it: form submissions, opens, clicks, unsubscribes.

A form submission stores the contact at once and hands the trigger to the enrollment queue, so the
website gets its answer without waiting for Step Functions. Opens and clicks come from our signed
links; each records engagement on the participant and resumes a `wait_for` parked on that event.
"""

from __future__ import annotations

from typing import Any

from chalicelib.channels.tokens import BadToken
from chalicelib.contacts.input import InputError, normalise_email
from chalicelib.engine.contacts import invalid, loose_write
from chalicelib.engine.enroll import Enroller, Enrollment
from chalicelib.engine.errors import BadRequest, NotFound, Unprocessable
from chalicelib.engine.ports import Runtime
from chalicelib.logs import logger
from chalicelib.storage.repos import TERMINAL

# Form fields that are never stored: the honeypot and the site's own bookkeeping.
HONEYPOT = "_hp"
_IGNORED = frozenset({HONEYPOT, "submit", "_redirect"})
# Fields a visitor must not set: the owner receives internal alerts, so a stranger could aim them.
_PROTECTED = frozenset({"owner_email"})


class FormSubmissions:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def submit(self, form_key: str, data: dict[str, Any]) -> dict[str, Any]:
        rt = self._rt
        form = rt.forms.get(form_key)
        if form is None:
            raise NotFound("form_not_found", f"no form {form_key!r}")
        if data.get(HONEYPOT):
            # A bot filled the hidden field: answer like a success and keep nothing.
            logger.info("honeypot submission dropped", extra={"form": form_key})
            return {"contact_id": None, "created": False, "flows": [], "already_enrolled": []}
        raw_email = data.get("email")
        if not isinstance(raw_email, str) or not raw_email.strip():
            raise Unprocessable("email_required", "a form submission needs an `email` field")
        values = {
            k: v
            for k, v in data.items()
            if k not in _IGNORED and k not in _PROTECTED and k != "email" and isinstance(v, str | int | float | bool)
        }
        try:
            email = normalise_email(raw_email)
        except InputError as exc:
            raise Unprocessable("invalid_email", exc.problems[0].message, [p.as_dict() for p in exc.problems]) from None
        try:
            write = loose_write(values, rt.fields.definitions(), phone_region=rt.settings.phone_region)
        except InputError as exc:
            raise invalid(exc, "submission") from None
        write.values["email"] = email
        initial = {"owner_email": form.owner_email} if form.owner_email else {}
        _, contact_id, created = rt.contacts.upsert(write, form=form_key, initial=initial)
        listening = rt.flows.listening(f"form_submitted#{form_key}")
        rt.enroll_queue.send({"type": "form_submitted", "form": form_key, "contact_id": contact_id})
        # Enrollment happens from the queue; say now where this trigger will change nothing.
        already = [] if created else [f.flow_id for f in listening if self._inside(f.flow_id, contact_id)]
        return {
            "contact_id": contact_id,
            "created": created,
            "flows": [f.flow_id for f in listening],
            "already_enrolled": already,
        }

    def _inside(self, flow_id: str, contact_id: str) -> bool:
        return any(p.status not in TERMINAL for p in self._rt.participants.entries(flow_id, contact_id))


class EnrollmentWorker:
    """Consumes the enrollment queue: enrolls into listening flows, resumes waits for the form."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._enroller = Enroller(rt)

    def handle(self, body: dict[str, Any]) -> list[Enrollment]:
        if body.get("type") != "form_submitted":
            raise ValueError(f"unknown enrollment message {body.get('type')!r}")
        form, contact_id = str(body["form"]), str(body["contact_id"])
        results = []
        for flow in self._rt.flows.listening(f"form_submitted#{form}"):
            result = self._enroller.enroll(flow.flow_id, contact_id, source=f"form {form}")
            logger.info("enrollment", extra={"flow_id": flow.flow_id, "contact_id": contact_id, **result.as_dict()})
            results.append(result)
        Engagement(self._rt).resume(contact_id, f"form_submitted#{form}#", mark=f"form_submitted:{form}")
        return results


class Engagement:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def track(self, token: str) -> dict[str, Any]:
        """Record an open or a click from a signed link; returns the link's payload."""
        try:
            payload = self._rt.links.verify(token)
        except BadToken:
            raise BadRequest("bad_token", "this link is not valid") from None
        kind = payload.get("k")
        if kind not in ("o", "c") or not all(isinstance(payload.get(k), str) for k in "pfsc"):
            raise BadRequest("bad_token", "this link is not a tracking link")
        flow_id, pid, step, contact_id = payload["f"], payload["p"], payload["s"], payload["c"]
        # A click proves the message was opened, even when the client blocked the pixel.
        events = ["opened"] if kind == "o" else ["opened", "clicked"]
        self._rt.participants.add_engagement(flow_id, pid, {f"{e}:{step}" for e in events})
        for event in events:
            self.resume(contact_id, f"{event}#{step}#{flow_id}#{pid}", mark=f"{event}:{step}")
        return payload

    def resume(self, contact_id: str, prefix: str, *, mark: str) -> int:
        """Answer every `wait_for` parked under `prefix`; for form waits also mark the participant."""
        resumed = 0
        for parked in self._rt.waits.find(contact_id, prefix):
            event, target, flow_id, pid = parked.wait_key.split("#", 3)
            if event == "form_submitted":
                self._rt.participants.add_engagement(flow_id, pid, {mark})
            if self._rt.tasks.succeed(parked.task_token, {"event": f"{event}:{target}"}):
                resumed += 1
                self._rt.participants.record(
                    flow_id,
                    pid,
                    trace=[{"at": self._rt.clock().isoformat(), "step": None, "event": "event", "detail": mark}],
                    status="active",
                    only_if_open=True,
                )
            self._rt.waits.remove(parked)
        return resumed

    def unsubscribe(self, token: str) -> dict[str, Any]:
        try:
            payload = self._rt.links.verify(token)
        except BadToken:
            raise BadRequest("bad_token", "this link is not valid") from None
        channel, contact_id = payload.get("ch"), payload.get("c")
        if channel not in ("email", "sms") or not isinstance(contact_id, str):
            raise BadRequest("bad_token", "this link is not an unsubscribe link")
        if not self._rt.contacts.unsubscribe(contact_id, channel):
            raise NotFound("contact_not_found", "the contact no longer exists")
        return {"contact_id": contact_id, "channel": channel, "unsubscribed": True}


class DeliveryEvents:
    """SES events from the stack's topic: a permanent bounce or a complaint stops email to that address.

    The contact is marked unsubscribed from email, which every send checks, so no flow mails a dead
    address or a person who reported spam again. Transient bounces and deliveries change nothing.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def handle(self, event: dict[str, Any]) -> list[str]:
        """The contact ids suppressed because of this event."""
        # Event publishing says `eventType`; classic feedback notifications say `notificationType`.
        kind = event.get("eventType") or event.get("notificationType")
        if kind == "Bounce" and (event.get("bounce") or {}).get("bounceType") == "Permanent":
            recipients = event["bounce"].get("bouncedRecipients") or []
        elif kind == "Complaint":
            recipients = (event.get("complaint") or {}).get("complainedRecipients") or []
        else:
            logger.info("SES event changes nothing", extra={"ses_event": kind})
            return []
        suppressed = []
        for recipient in recipients:
            address = str(recipient.get("emailAddress") or "")
            contact = self._rt.contacts.find_by_email(address) if address else None
            if contact is not None and self._rt.contacts.unsubscribe(contact.contact_id, "email"):
                suppressed.append(contact.contact_id)
                logger.info("email suppressed", extra={"ses_event": kind, "contact_id": contact.contact_id})
        return suppressed
