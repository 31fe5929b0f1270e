"""Settings from the environment, read once per container.

In AWS the stack sets these on every function; the local stack and the tests set them before the
app is imported. Nothing else reads `os.environ`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import time
from functools import cache


@dataclass(frozen=True)
class QuietHours:
    """No message goes out between `start` and `end` in the contact's time zone (`start > end` spans midnight)."""

    start: time
    end: time


@dataclass(frozen=True)
class EmailCaps:
    """At most this many emails per contact per day / per week; None means no cap."""

    per_day: int | None = None
    per_week: int | None = None


@dataclass(frozen=True)
class Settings:
    tenant: str
    region: str
    table_prefix: str
    steps_queue_url: str
    enroll_queue_url: str
    imports_queue_url: str
    state_machine_role_arn: str
    sender: str
    configuration_set: str | None
    public_url: str
    link_secret: bytes
    # Flow time per real time: 1.0 in production; 1/20000 makes a day last about four seconds.
    time_scale: float
    # Set only for the local stack (moto's server); None means the real AWS endpoints.
    endpoint_url: str | None
    # Phone numbers written without a country code are read as numbers of this region (ISO 3166).
    phone_region: str = "NL"
    # From the tenant file (`chalicelib.tenants`): the sender's display name and postal address for marketing
    # email, and the tenant's default quiet hours and per-contact email caps.
    sender_name: str = ""
    postal_address: str = ""
    # The time zone of contacts who have none of their own (IANA name).
    time_zone: str = "UTC"
    quiet_hours: QuietHours | None = None
    email_caps: EmailCaps = field(default_factory=EmailCaps)
    # Browser origins allowed to post forms (`https://www.example.com`); empty allows any.
    form_origins: tuple[str, ...] = ()

    @property
    def state_machine_prefix(self) -> str:
        return f"floe-{self.tenant}-"


def from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> Settings:
    tenant = env.get("FLOE_TENANT", "dev")
    return Settings(
        tenant=tenant,
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "eu-west-1",
        table_prefix=env.get("FLOE_TABLE_PREFIX", f"floe-{tenant}-"),
        steps_queue_url=env.get("FLOE_STEPS_QUEUE_URL", ""),
        enroll_queue_url=env.get("FLOE_ENROLL_QUEUE_URL", ""),
        imports_queue_url=env.get("FLOE_IMPORTS_QUEUE_URL", ""),
        state_machine_role_arn=env.get("FLOE_SFN_ROLE_ARN", "arn:aws:iam::123456789012:role/floe-states"),
        sender=env.get("FLOE_SENDER", "flows@example.com"),
        configuration_set=env.get("FLOE_SES_CONFIGURATION_SET") or None,
        public_url=env.get("FLOE_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
        link_secret=env.get("FLOE_LINK_SECRET", "local-only-secret").encode(),
        time_scale=float(env.get("FLOE_TIME_SCALE", "1")),
        endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        phone_region=env.get("FLOE_PHONE_REGION", "NL").upper(),
        sender_name=env.get("FLOE_SENDER_NAME", ""),
        postal_address=env.get("FLOE_POSTAL_ADDRESS", ""),
        time_zone=env.get("FLOE_TIME_ZONE", "") or "UTC",
        quiet_hours=parse_quiet_hours(env.get("FLOE_QUIET_HOURS", "")),
        email_caps=parse_email_caps(env.get("FLOE_EMAIL_CAPS", "")),
        form_origins=tuple(
            o.strip().rstrip("/").lower() for o in env.get("FLOE_FORM_ORIGINS", "").split(",") if o.strip()
        ),
    )


def parse_quiet_hours(text: str) -> QuietHours | None:
    """`21:00-08:00` as QuietHours; an empty text means none. The tenant generator writes this form."""
    if not text.strip():
        return None
    start, sep, end = text.strip().partition("-")
    if not sep:
        raise ValueError(f"FLOE_QUIET_HOURS {text!r} is not HH:MM-HH:MM")
    return QuietHours(time.fromisoformat(start), time.fromisoformat(end))


def parse_email_caps(text: str) -> EmailCaps:
    """`day=1,week=3` as EmailCaps (either part may be left out); an empty text means no caps."""
    caps: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        period, _, count = part.partition("=")
        if period not in ("day", "week") or not count.isdigit() or int(count) < 1:
            raise ValueError(f"FLOE_EMAIL_CAPS {text!r}: expected day=<n>,week=<n> with n >= 1")
        caps[period] = int(count)
    return EmailCaps(per_day=caps.get("day"), per_week=caps.get("week"))


@cache
def settings() -> Settings:
    return from_env()
