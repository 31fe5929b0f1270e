"""Settings from the environment, read once per container.

In AWS the stack sets these on every function; the local stack and the tests set them before the
app is imported. Nothing else reads `os.environ`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


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
    )


@cache
def settings() -> Settings:
    return from_env()
