"""The local outbox: every email moto's SES accepted becomes an `.eml` file, every SMS a line in a log.

Moto's server runs in this process, so its backends are read directly; nothing here runs in AWS.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends


class Outbox:
    def __init__(self, folder: Path, region: str) -> None:
        self.emails = folder / "outbox"
        self.sms_log = folder / "sms.log"
        self.emails.mkdir(parents=True, exist_ok=True)
        self._region = region
        self._emails_seen = 0
        self._sms_seen: set[str] = set()

    def collect(self) -> int:
        """Write out what was sent since the last call; returns how many messages that was."""
        written = 0
        sent = ses_backends[DEFAULT_ACCOUNT_ID][self._region].sent_messages
        for message in sent[self._emails_seen :]:
            self._emails_seen += 1
            raw = getattr(message, "raw_data", None)
            if raw is None:
                continue
            to = re.sub(
                r"[^A-Za-z0-9@._-]", "_", ",".join(dict.fromkeys(getattr(message, "destinations", []) or ["unknown"]))
            )[:80]
            (self.emails / f"{self._emails_seen:04d}-{to}.eml").write_text(raw)
            written += 1
        sms = sns_backends[DEFAULT_ACCOUNT_ID][self._region].sms_messages
        new = [(mid, msg) for mid, msg in list(sms.items()) if mid not in self._sms_seen]
        if new:
            with self.sms_log.open("a") as log:
                for mid, (phone, text) in new:
                    self._sms_seen.add(mid)
                    log.write(f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} {phone} {text}\n")
                    written += 1
        return written
