"""What an import file may be: its formats (by content type) and its limits."""

from __future__ import annotations

# The largest upload: below API Gateway's 10 MB and Lambda's 6 MB synchronous payload, with room for
# the rest of the event.
MAX_BODY = 5 * 1024 * 1024
# The most rows one upload may hold: checking a row takes a few hundred microseconds, and reading and
# queuing a whole file must end well within API Gateway's 29 s.
MAX_ROWS = 25_000
# Rows per queued chunk, and a chunk's largest size (an SQS message holds 256 KiB).
CHUNK_ROWS = 100
CHUNK_BYTES = 200_000

FORMATS = {"text/csv": "csv", "application/x-ndjson": "jsonl", "application/jsonl": "jsonl"}
