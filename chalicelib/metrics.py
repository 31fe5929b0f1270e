"""The stack's operational metrics, published as CloudWatch Embedded Metric Format (EMF) with Powertools.

The engine counts what happens as it happens (`enrollment`, `send`, `skip`, `step_failure`,
`failed_record`); `flush` writes the counts once, at the end of each Lambda invocation: the queue
and stream handlers are wrapped in `published`, the API's routes run inside the `after_request`
middleware. In AWS the documents go to stdout, so the function's log group turns them into metrics
in the namespace `Floe`; nothing is called over the network.

Every metric carries the dimension set `[tenant]` alone, which the alarms watch, and its split
(`[tenant, channel, outcome]` for sends, …) as a second dimension set of the same document, so
each event is counted once per set and the two never add up twice. docs/metrics.md lists them.

Powertools' `Metrics` shares one dimension set between all its instances, which allows a single
split per document; the splits are therefore written with `EphemeralMetrics` (the same EMF
provider without shared state), one document per split value. Powertools is imported on the first
flush that has something to write, so importing the app stays as cheap as before.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from chalicelib.config import settings
from chalicelib.logs import logger

NAMESPACE = "Floe"

Sink = Callable[[dict[str, Any]], None]
Dimensions = tuple[tuple[str, str], ...]
P = ParamSpec("P")
R = TypeVar("R")

# Worker threads of the local stack count at the same time; in Lambda there is only one.
_lock = threading.Lock()
_counts: Counter[tuple[str, Dimensions]] = Counter()


def _stdout(document: dict[str, Any]) -> None:
    # What Powertools' own flush does: one compact JSON line, which Lambda's log group reads as EMF.
    print(json.dumps(document, separators=(",", ":")), flush=True)


_sink: Sink = _stdout


def _count(name: str, **dimensions: str) -> None:
    # An empty dimension value is dropped by CloudWatch; name it instead of losing the split.
    key = tuple((k, str(v)[:250] or "unknown") for k, v in dimensions.items())
    with _lock:
        _counts[(name, key)] += 1


def enrollment(outcome: str) -> None:
    """An enrollment decided: `enrolled`, `already_enrolled`, `reentry_blocked`, `filtered_out`, …"""
    _count("Enrollments", outcome=outcome)


def send(channel: str, outcome: str) -> None:
    """A message handed to its channel (`email`, `sms`, `notify`, `webhook`) with the channel's answer."""
    _count("Sends", channel=channel, outcome=outcome)


def skip(channel: str, reason: str) -> None:
    """A message not sent, with its short reason code (`no_email`, `sms_unsubscribed`, …)."""
    _count("Skips", channel=channel, reason=reason)


def step_failure(error: str) -> None:
    """A participant failed for good: a step failed permanently or ran out of retries."""
    _count("StepFailures", error=error)


def failed_record(worker: str) -> None:
    """A queue or stream record a worker could not handle; it is retried, then dead-lettered."""
    _count("FailedRecords", worker=worker)


def documents(counts: dict[tuple[str, Dimensions], int], tenant: str) -> list[dict[str, Any]]:
    """The EMF documents for these counts: one per split value, each also counted under `[tenant]`."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    by_split: defaultdict[Dimensions, dict[str, int]] = defaultdict(dict)
    for (name, split), value in counts.items():
        by_split[split][name] = value
    out = []
    for split, values in sorted(by_split.items()):
        # An empty service: POWERTOOLS_SERVICE_NAME would otherwise join the `[tenant]` set.
        emf = EphemeralMetrics(namespace=NAMESPACE, service="")
        emf.set_default_dimensions(tenant=tenant)
        if split:
            emf.add_dimensions(**dict(split))
        for name, value in sorted(values.items()):
            emf.add_metric(name=name, unit=MetricUnit.Count, value=value)
        out.append(dict(emf.serialize_metric_set()))
    return out


def flush() -> int:
    """Publish and reset the counts; the number of documents written. Never raises: a metric is not worth a retry."""
    with _lock:
        counts = dict(_counts)
        _counts.clear()
    if not counts:
        return 0
    try:
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled

        if is_metrics_disabled():
            return 0
        written = documents(counts, settings().tenant)
        for document in written:
            _sink(document)
    except Exception:
        logger.exception("metrics not published", extra={"metrics": sorted(name for name, _ in counts)})
        return 0
    return len(written)


def published(handler: Callable[P, R]) -> Callable[P, R]:
    """A Lambda handler that flushes the metrics when it returns or raises."""

    @functools.wraps(handler)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        finally:
            flush()

    return run


def after_request(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice HTTP middleware: the metrics counted while answering (manual enrollments) are flushed."""
    try:
        return get_response(event)
    finally:
        flush()


def use(sink: Sink) -> Sink:
    """Send the documents to `sink` from now on (the local stack writes a file); returns the previous sink."""
    global _sink
    previous, _sink = _sink, sink
    return previous


@contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """The documents flushed inside the block, instead of stdout (the tests read what CloudWatch would)."""
    got: list[dict[str, Any]] = []
    previous = use(got.append)
    try:
        yield got
    finally:
        use(previous)


def to_file(path: Path) -> Sink:
    """A sink appending one EMF document per line, for the local stack (its console stays readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def write(document: dict[str, Any]) -> None:
        line = json.dumps(document, separators=(",", ":")) + "\n"
        with lock, path.open("a", encoding="utf-8") as out:
            out.write(line)

    return write
