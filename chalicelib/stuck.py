"""Participants that stopped moving, why, and ending one by hand.

A participant is open while its status is `starting`, `active` or `waiting`. Each open participant
not updated for longer than the threshold is checked against its execution:

- waiting in the state of its own wait (a `wait`, the Wait of a `wait_until`, a `wait_for`'s task
  with its timeout): healthy, however long; not listed;
- `task_outstanding`: the execution has been in a step's task state for longer than the threshold
  and the worker never answered: the message is retrying on the steps queue or is in the steps
  dead-letter queue (a step can take a while only when a refused send is retried, and each retry
  is recorded on the participant). Redrive it;
- `execution_closed`: the execution has ended (stopped, failed, timed out) but the participant was
  never closed. End the participant;
- `not_started`: enrolled, but its execution never started (the enrollment stopped between its two
  writes). Enrolling the contact again starts it.

docs/runbook.md says what to do with each.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.storage.models import FlowModel, ParticipantModel
from chalicelib.storage.repos import Participants

OPEN = ("starting", "active", "waiting")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The error and cause an execution ended by `end` carries in its history.
ENDED_ERROR = "Floe.EndedByOperator"

ACTIONS = {
    "not_started": "enroll the contact again (POST /flows/{flow_id}/enrollments): the execution is started",
    "execution_closed": "python -m chalicelib.admin end-participant {flow_id} {participant_id}",
    "task_outstanding": "python -m chalicelib.admin dlq-status; if the steps queue has dead letters, "
    "python -m chalicelib.admin redrive steps",
}


def seconds(text: str) -> int:
    """`90s`, `30m`, `2h`, `1d` in seconds; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 2h or 1d")
    return int(match.group(1)) * _UNIT[match.group(2)]


class Stuck:
    def __init__(self, sfn: Any, *, clock: Any) -> None:
        self._sfn = sfn
        self._clock = clock

    def find(self, *, older_than: int, flow_id: str | None = None) -> dict[str, Any]:
        now = self._clock()
        checked, stuck = 0, []
        for participant in self._open(flow_id):
            checked += 1
            # A cheap first cut: the state the execution is in was entered after the last update, if at all.
            if (now - participant.updated_at).total_seconds() < older_than:
                continue
            found = self._diagnose(participant, now, older_than)
            if found is not None:
                stuck.append(found)
        return {"older_than_seconds": older_than, "open_participants": checked, "stuck": stuck}

    def _open(self, flow_id: str | None) -> Iterator[ParticipantModel]:
        flows: Iterable[str] = [flow_id] if flow_id else (f.flow_id for f in FlowModel.scan())
        for fid in flows:
            yield from ParticipantModel.query(fid, filter_condition=ParticipantModel.status.is_in(*OPEN))

    def _diagnose(self, p: ParticipantModel, now: dt.datetime, older_than: int) -> dict[str, Any] | None:
        execution = self._execution(p.execution_arn) if p.execution_arn else None
        running = execution is not None and execution["status"] == "RUNNING"
        idle = (now - p.updated_at).total_seconds()
        if p.status == "starting" and not running:
            diagnosis = "not_started"
        elif execution is not None and running:
            state, since = execution["state"], execution["since"]
            if p.status == "waiting" and state in (p.current_step, f"{p.current_step}.until"):
                return None
            # After a wait, the participant was last updated when the wait began; the task is newer.
            if since is not None:
                idle = min(idle, (now - since).total_seconds())
            if idle < older_than:
                return None
            diagnosis = "task_outstanding"
        else:
            # The execution ended, or is unknown to a participant past `starting`: only ending it closes it.
            diagnosis = "execution_closed"
        out: dict[str, Any] = {
            "flow_id": p.flow_id,
            "participant_id": p.participant_id,
            "contact_id": p.contact_id,
            "status": p.status,
            "current_step": p.current_step,
            "updated_at": p.updated_at.isoformat(),
            "idle_seconds": int(idle),
            "execution_arn": p.execution_arn,
            "execution_status": execution["status"] if execution else None,
            "state": execution.get("state") if execution else None,
            "diagnosis": diagnosis,
            "action": ACTIONS[diagnosis].format(flow_id=p.flow_id, participant_id=p.participant_id),
        }
        return out

    def _execution(self, arn: str) -> dict[str, Any] | None:
        try:
            described = self._sfn.describe_execution(executionArn=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return None
            raise
        state, since = self._state(arn)
        return {"status": described["status"], "state": state, "since": since}

    def _state(self, arn: str) -> tuple[str | None, dt.datetime | None]:
        """The state the execution entered last (a step's task, or a wait), and when."""
        events = self._sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=100)["events"]
        # Sorted here as well: not every implementation honours reverseOrder.
        for event in sorted(events, key=lambda e: int(e["id"]), reverse=True):
            entered = event.get("stateEnteredEventDetails")
            if entered:
                return str(entered["name"]), event["timestamp"]
        return None, None


def end(
    sfn: Any, participants: Participants, flow_id: str, participant_id: str, *, now: dt.datetime, why: str
) -> dict[str, Any] | None:
    """Close a participant as `exited: ended_by_operator` and stop its execution; None if there is no such one.

    The participant is closed first: should the stop fail, the execution's next step finds it closed
    and leaves the flow by itself.
    """
    item = participants.get(flow_id, participant_id)
    if item is None:
        return None
    ended = participants.record(
        flow_id,
        participant_id,
        trace=[{"at": now.isoformat(), "step": item.current_step, "event": "exited", "detail": why}],
        status="exited",
        reason="ended_by_operator",
        only_if_open=True,
    )
    stopped = False
    if item.execution_arn and _running(sfn, item.execution_arn):
        sfn.stop_execution(executionArn=item.execution_arn, error=ENDED_ERROR, cause=why[:32768])
        stopped = True
    after = participants.get(flow_id, participant_id)
    return {
        "flow_id": flow_id,
        "participant_id": participant_id,
        "ended": ended,
        "status": after.status if after else None,
        "reason": after.reason if after else None,
        "execution_stopped": stopped,
    }


def _running(sfn: Any, arn: str) -> bool:
    try:
        return bool(sfn.describe_execution(executionArn=arn)["status"] == "RUNNING")
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False
        raise
