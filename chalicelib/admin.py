"""Operator commands for a deployed stack, run from a shell with the tenant account's credentials.

The first admin API key of a new stack cannot come from the API (creating keys needs a key), so it
is made here, straight in the stack's API key table:

    python -m chalicelib.admin --tenant acme create-key --role admin --name ops
    python -m chalicelib.admin --tenant acme list-keys
    python -m chalicelib.admin --tenant acme revoke-key <key id>

The tables are found like the functions find them: `floe-<tenant>-` (or FLOE_TABLE_PREFIX) in
AWS_REGION. The key is printed once, as JSON; only its hash is stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from chalicelib.access import ROLES
from chalicelib.config import from_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.admin", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", help="the stack's tenant (default: FLOE_TENANT, else dev)")
    parser.add_argument("--region", help="the stack's region (default: AWS_REGION or AWS_DEFAULT_REGION)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="create an API key and print it (the only time it is shown)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True, help="who or what uses the key, e.g. `ops` or `crm-sync`")
    commands.add_parser("list-keys", help="list the keys (never their secrets)")
    revoke = commands.add_parser("revoke-key", help="revoke a key (the API stops accepting it within 60 s)")
    revoke.add_argument("key_id")
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
