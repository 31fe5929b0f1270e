"""Operator commands for a deployed stack, run from a shell with the tenant account's credentials.

The first admin API key of a new stack cannot come from the API (creating keys needs a key), so it
is made here, straight in the stack's API key table:

    python -m chalicelib.admin --tenant acme create-key --role admin --name ops
    python -m chalicelib.admin --tenant acme list-keys
    python -m chalicelib.admin --tenant acme revoke-key <key id>

Dead letters and stuck participants (docs/runbook.md):

    python -m chalicelib.admin dlq-status --tenant acme
    python -m chalicelib.admin redrive steps --tenant acme [--max 100] [--dry-run]
    python -m chalicelib.admin stuck --tenant acme [--flow <flow id>] [--older-than 1h]
    python -m chalicelib.admin end-participant <flow id> <participant id> --tenant acme [--why "..."]

Changes the change worker missed (docs/runbook.md):

    python -m chalicelib.admin replay-changes --tenant acme [--dry-run]
    python -m chalicelib.admin reindex --tenant acme [--dry-run]

The tables and queues are found like the functions find them: `floe-<tenant>-` (or
FLOE_TABLE_PREFIX) in AWS_REGION. Every command prints JSON. A key is printed once; only its hash is
stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from chalicelib.access import ROLES
from chalicelib.config import Settings, from_env
from chalicelib.deadletters import REDRIVABLE

KEY_COMMANDS = ("create-key", "list-keys", "revoke-key")


def _stack_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--tenant", default=default, help="the stack's tenant (default: FLOE_TENANT, else dev)")
    parser.add_argument(
        "--region", default=default, help="the stack's region (default: AWS_REGION or AWS_DEFAULT_REGION)"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("give a number of messages, 1 or more")
    return value


def _duration(text: str) -> int:
    from chalicelib.stuck import seconds

    try:
        return seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.admin", description=__doc__.splitlines()[0])
    _stack_options(parser, None)
    # The stack options may also follow the command; there they only override what was given before it.
    stack = argparse.ArgumentParser(add_help=False)
    _stack_options(stack, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-key", parents=[stack], help="create an API key and print it (the only time it is shown)"
    )
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True, help="who or what uses the key, e.g. `ops` or `crm-sync`")
    commands.add_parser("list-keys", parents=[stack], help="list the keys (never their secrets)")
    revoke = commands.add_parser(
        "revoke-key", parents=[stack], help="revoke a key (the API stops accepting it within 60 s)"
    )
    revoke.add_argument("key_id")
    commands.add_parser("dlq-status", parents=[stack], help="the depth of each dead-letter queue")
    redrive = commands.add_parser(
        "redrive", parents=[stack], help="move a dead-letter queue's messages back to their queue"
    )
    redrive.add_argument("queue", choices=REDRIVABLE)
    redrive.add_argument("--max", type=_positive, help="move at most this many messages (default: all there now)")
    redrive.add_argument("--dry-run", action="store_true", help="show what would move, and move nothing")
    stuck = commands.add_parser(
        "stuck", parents=[stack], help="list participants that stopped moving, with a diagnosis and what to do"
    )
    stuck.add_argument("--flow", help="only this flow (default: every flow)")
    stuck.add_argument(
        "--older-than", type=_duration, default=3600, help="idle for longer than this: 90s, 30m, 2h, 1d (default 1h)"
    )
    end = commands.add_parser(
        "end-participant", parents=[stack], help="end one participant: it exits the flow and its execution stops"
    )
    end.add_argument("flow_id")
    end.add_argument("participant_id")
    end.add_argument("--why", default="ended by an operator", help="the reason written in its trace")
    replay = commands.add_parser(
        "replay-changes",
        parents=[stack],
        help="read the stream batches described in the changes DLQ again and hand them to the change worker",
    )
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed, and replay nothing")
    rebuild = commands.add_parser(
        "reindex", parents=[stack], help="rebuild the segment index from the contacts (fixes only what differs)"
    )
    rebuild.add_argument("--dry-run", action="store_true", help="count what would be fixed, and fix nothing")
    return parser


def _client(s: Settings, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=s.region, **({"endpoint_url": s.endpoint_url} if s.endpoint_url else {}))


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2))


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    import os

    from chalicelib.api.keys import key_view
    from chalicelib.storage import models
    from chalicelib.storage.keys import ApiKeys

    args = _parser().parse_args(argv)
    environ = dict(os.environ if env is None else env)
    if args.tenant:
        # The stack names its tables after its Tenant parameter, whatever this shell's FLOE_TABLE_PREFIX says.
        environ["FLOE_TENANT"] = args.tenant
        environ["FLOE_TABLE_PREFIX"] = f"floe-{args.tenant}-"
    if args.region:
        environ["AWS_REGION"] = args.region
    s = from_env(environ)
    models.bind(table_prefix=s.table_prefix, region=s.region, host=s.endpoint_url)
    if args.command not in KEY_COMMANDS:
        return _operate(args, s)
    keys = ApiKeys()
    if not models.ApiKeyModel.exists():
        print(
            f"no table {models.ApiKeyModel.Meta.table_name} in {s.region}: check --tenant and --region", file=sys.stderr
        )
        return 1
    if args.command == "create-key":
        name = args.name.strip()
        if not 1 <= len(name) <= 128:
            print("--name needs 1-128 characters", file=sys.stderr)
            return 2
        item, key = keys.create(name, args.role)
        print(json.dumps({**key_view(item), "key": key}, indent=2))
    elif args.command == "list-keys":
        print(json.dumps({"keys": [key_view(k) for k in keys.all()]}, indent=2))
    else:
        revoked = keys.revoke(args.key_id)
        if revoked is None:
            print(f"no API key {args.key_id!r}", file=sys.stderr)
            return 1
        print(json.dumps(key_view(revoked), indent=2))
    return 0


def _operate(args: argparse.Namespace, s: Settings) -> int:
    """The dead-letter, stuck-participant and repair commands."""
    from chalicelib.deadletters import DeadLetters, QueueMissing
    from chalicelib.storage import models

    if args.command in ("replay-changes", "reindex"):
        return _repair(args, s)
    if args.command in ("dlq-status", "redrive"):
        dead_letters = DeadLetters(_client(s, "sqs"), tenant=s.tenant)
        if args.command == "dlq-status":
            _print({"tenant": s.tenant, "dead_letter_queues": dead_letters.status()})
            return 0
        try:
            moved = dead_letters.redrive(args.queue, limit=args.max, dry_run=args.dry_run)
        except QueueMissing as exc:
            print(f"{exc} in {s.region}: check --tenant and --region", file=sys.stderr)
            return 1
        _print(moved.as_dict())
        return 0 if moved.failed == 0 and moved.not_deleted == 0 else 1

    from chalicelib.storage.repos import Participants, utcnow
    from chalicelib.stuck import Stuck, end

    if not models.ParticipantModel.exists():
        print(
            f"no table {models.ParticipantModel.Meta.table_name} in {s.region}: check --tenant and --region",
            file=sys.stderr,
        )
        return 1
    sfn = _client(s, "stepfunctions")
    if args.command == "stuck":
        _print(Stuck(sfn, clock=utcnow).find(older_than=args.older_than, flow_id=args.flow))
        return 0
    ended = end(sfn, Participants(utcnow), args.flow_id, args.participant_id, now=utcnow(), why=args.why)
    if ended is None:
        print(f"no participant {args.participant_id!r} in flow {args.flow_id!r}", file=sys.stderr)
        return 1
    _print(ended)
    return 0


def _repair(args: argparse.Namespace, s: Settings) -> int:
    """Changes the change worker missed: replay them from the stream, or rebuild the segment index."""
    from chalicelib.bootstrap import build_runtime
    from chalicelib.deadletters import DeadLetters, QueueMissing
    from chalicelib.engine.changes import ChangeWorker
    from chalicelib.local.streams import streams_client
    from chalicelib.reindex import reindex
    from chalicelib.replay import ChangeReplay
    from chalicelib.storage import models

    if not models.ContactModel.exists():
        print(
            f"no table {models.ContactModel.Meta.table_name} in {s.region}: check --tenant and --region",
            file=sys.stderr,
        )
        return 1
    rt = build_runtime(s)
    if args.command == "reindex":
        _print(reindex(rt.segment_index, dry_run=args.dry_run).as_dict())
        return 0
    sqs = _client(s, "sqs")
    dead_letters = DeadLetters(sqs, tenant=s.tenant)
    try:
        queue = dead_letters.queue_url(dead_letters.name("changes", dead=True))
    except QueueMissing as exc:
        print(f"{exc} in {s.region}: check --tenant and --region", file=sys.stderr)
        return 1
    streams = streams_client(s.region, s.endpoint_url)
    replayed = ChangeReplay(sqs, streams, queue, ChangeWorker(rt).handle).run(dry_run=args.dry_run)
    _print(replayed.as_dict())
    return 0 if not replayed.failed and not replayed.expired and not replayed.unreadable else 1


if __name__ == "__main__":
    sys.exit(main())
