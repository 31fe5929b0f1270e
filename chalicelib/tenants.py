"""Tenant files → Chalice stages and IAM policy files, and the deploy of one tenant's stack.

A tenant is described once, in `tenants/<name>.toml` (name, sender, postal address, quiet hours, email
caps, allowed form origins, phone region, public URL, alarm email, where to deploy). This module checks
the file and writes what Chalice reads from it:

- the tenant's stage in `.chalice/config.json`: a copy of the `dev` stage (the template: timeouts,
  memory, tracing, log retention) with the tenant's names and settings (`FLOE_*` variables);
- `.chalice/policy-<name>.json`, `-changes.json` and `-authorizer.json`: the `dev` policy files with
  every `floe-dev` resource renamed and the SES `From` condition set to the tenant's sending domain.

Writing is idempotent: a file is rewritten only when its content changes, so `check` can tell whether
the checked-in files are what the tenant files say.

    python -m chalicelib.tenants generate [name ...]   # every tenant when no name is given
    python -m chalicelib.tenants check                 # exit 1 when a generated file is out of date
    python -m chalicelib.tenants deploy acme --check   # are credentials, bucket, region and the AWS CLI there?
    python -m chalicelib.tenants deploy acme --template build/acme/sam.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT = Path(__file__).resolve().parents[1]
TENANTS = PROJECT / "tenants"
CHALICE = PROJECT / ".chalice"
# The stage and policy files every other tenant's are made from.
TEMPLATE = "dev"
# Also the `Tenant` parameter's AllowedPattern in infra/resources.json. No hyphen, so that `floe-<name>-*`
# (the policies' resource patterns) never matches another tenant's resources; 20 characters keep every
# derived name (`floe-<name>-participant_changes`, state machines `floe-<name>-<flow>-v<n>`) within AWS limits.
NAME = re.compile(r"[a-z][a-z0-9]{0,19}")
POLICY_SUFFIXES = ("", "-changes", "-authorizer")


class TenantFileError(ValueError):
    """A tenant file that cannot be used, with every problem found."""


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a tenant name: use lower-case letters and digits only (no hyphens), "
            "starting with a letter, at most 20 characters"
        )
    return value


def _hh_mm(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00-23:59)")
    return value


def _one_line(value: str) -> str:
    # These end up in mail headers and footers: a line break there would be header injection.
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    return value


def _email(value: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        # SES sends without SMTPUTF8, so the address must be plain ASCII.
        return str(validate_email(value, allow_smtputf8=False, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not an email address: {exc}") from None


def _origin(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin such as https://www.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} is not an origin: no path, query or user, just scheme://host[:port]")
    # Browsers send the origin lower-case and without a trailing slash.
    return f"{parts.scheme}://{parts.netloc.lower()}"


Email = Annotated[str, AfterValidator(_email)]
OneLine = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sender(Strict):
    address: Email
    name: OneLine


class QuietHours(Strict):
    """In the contact's time zone; `start` after `end` spans midnight (21:00-08:00)."""

    start: Annotated[str, AfterValidator(_hh_mm)]
    end: Annotated[str, AfterValidator(_hh_mm)]

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time: leave [quiet_hours] out for none")
        return self


class EmailCaps(Strict):
    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _week_holds_a_day(self) -> EmailCaps:
        if self.per_day and self.per_week and self.per_week < self.per_day:
            raise ValueError("per_week is smaller than per_day")
        return self


class Forms(Strict):
    # Empty: a form may be posted from any page.
    allowed_origins: list[Annotated[str, AfterValidator(_origin)]] = []


class Deploy(Strict):
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    # The S3 bucket `aws cloudformation package` uploads the code to (FLOE_ARTIFACT_BUCKET overrides it).
    artifact_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class Tenant(Strict):
    name: Annotated[str, AfterValidator(_name)]
    public_url: str
    sender: Sender
    postal_address: OneLine
    phone_region: str = Field(pattern=r"^[A-Z]{2}$")
    time_zone: str = "UTC"
    alarm_email: Email | None = None
    quiet_hours: QuietHours | None = None
    email_caps: EmailCaps = EmailCaps()
    forms: Forms = Forms()
    deploy: Deploy = Deploy()

    @field_validator("public_url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r}: the base URL of links in messages, https://host[/path]")
        return value.rstrip("/")

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        import phonenumbers

        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a country code (ISO 3166 alpha-2) with phone numbers")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Amsterdam") from None
        return value

    @property
    def sending_domain(self) -> str:
        return self.sender.address.rpartition("@")[2]

    def environment(self) -> dict[str, str]:
        """The stage's `FLOE_*` variables this tenant owns; `chalicelib.config` reads them."""
        caps = self.email_caps
        quiet = self.quiet_hours
        return {
            "FLOE_TENANT": self.name,
            "FLOE_TABLE_PREFIX": f"floe-{self.name}-",
            "FLOE_SENDER": self.sender.address,
            "FLOE_SENDER_NAME": self.sender.name,
            "FLOE_POSTAL_ADDRESS": self.postal_address,
            "FLOE_SES_CONFIGURATION_SET": f"floe-{self.name}",
            "FLOE_PUBLIC_URL": self.public_url,
            "FLOE_PHONE_REGION": self.phone_region,
            "FLOE_TIME_ZONE": self.time_zone,
            "FLOE_QUIET_HOURS": f"{quiet.start}-{quiet.end}" if quiet else "",
            "FLOE_EMAIL_CAPS": ",".join(
                f"{period}={count}" for period, count in (("day", caps.per_day), ("week", caps.per_week)) if count
            ),
            "FLOE_FORM_ORIGINS": ",".join(self.forms.allowed_origins),
        }


# --------------------------------------------------------------------------------------------------- reading


def tenant_path(name: str, tenants_dir: Path = TENANTS) -> Path:
    _check_name_argument(name)
    return tenants_dir / f"{name}.toml"


def _check_name_argument(name: str) -> None:
    try:
        _name(name)
    except ValueError as exc:
        raise TenantFileError(str(exc)) from None


def load(path: Path) -> Tenant:
    """The tenant of this file, or TenantFileError listing every problem with where it is."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TenantFileError(f"{path}: no such tenant file") from None
    except tomllib.TOMLDecodeError as exc:
        raise TenantFileError(f"{path}: not TOML: {exc}") from None
    try:
        tenant = Tenant.model_validate(data)
    except ValidationError as exc:
        problems = [f"  {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()]
        raise TenantFileError(f"{path}:\n" + "\n".join(problems)) from None
    if tenant.name != path.stem:
        raise TenantFileError(f"{path}: name is {tenant.name!r} but the file is named {path.stem!r}")
    return tenant


def all_tenants(tenants_dir: Path = TENANTS) -> list[Tenant]:
    """Every tenant file's tenant, the template (dev) first."""
    paths = sorted(tenants_dir.glob("*.toml"), key=lambda p: (p.stem != TEMPLATE, p.stem))
    return [load(path) for path in paths]


# ------------------------------------------------------------------------------------------------ generating


def _rename(value: Any, name: str) -> Any:
    """`value` with every `floe-dev` resource name (after `:` or `/` in an ARN) made `floe-<name>`."""
    if isinstance(value, str):
        return re.sub(rf"(?<=[:/])floe-{TEMPLATE}(?=-|$)", f"floe-{name}", value)
    if isinstance(value, list):
        return [_rename(v, name) for v in value]
    if isinstance(value, dict):
        return {k: _rename(v, name) for k, v in value.items()}
    return value


def policy(template: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    """A dev policy document made the tenant's: its resources renamed, SES `From` pinned to its domain."""
    document = _rename(copy.deepcopy(template), tenant.name)
    for statement in document["Statement"]:
        like = statement.get("Condition", {}).get("StringLike", {})
        if "ses:FromAddress" in like:
            like["ses:FromAddress"] = f"*@{tenant.sending_domain}"
    return dict(document)


def stage(template: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    """The dev stage made the tenant's: its policy files, tag and `FLOE_*` settings; the rest as dev's."""
    out = copy.deepcopy(template)
    out["iam_policy_file"] = f"policy-{tenant.name}.json"
    out["tags"] = {**out.get("tags", {}), "floe:tenant": tenant.name}
    out["environment_variables"] = {**out.get("environment_variables", {}), **tenant.environment()}
    for settings in out.get("lambda_functions", {}).values():
        if "iam_policy_file" in settings:
            suffix = settings["iam_policy_file"].removeprefix(f"policy-{TEMPLATE}")
            settings["iam_policy_file"] = f"policy-{tenant.name}{suffix}"
    return dict(out)


def _dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def rendered(tenant: Tenant, chalice_dir: Path = CHALICE) -> dict[Path, str]:
    """Every file the tenant needs, with its content, made from the dev stage and policy files."""
    config = json.loads((chalice_dir / "config.json").read_text(encoding="utf-8"))
    if TEMPLATE not in config.get("stages", {}):
        raise TenantFileError(f"{chalice_dir / 'config.json'} has no {TEMPLATE!r} stage to copy")
    made: dict[Path, Any] = {chalice_dir / "config.json": stage(config["stages"][TEMPLATE], tenant)}
    for suffix in POLICY_SUFFIXES:
        template = json.loads((chalice_dir / f"policy-{TEMPLATE}{suffix}.json").read_text(encoding="utf-8"))
        made[chalice_dir / f"policy-{tenant.name}{suffix}.json"] = policy(template, tenant)
    if tenant.name != TEMPLATE:
        leftovers = [rf"(floe|policy)-{TEMPLATE}\b"]
        domain = str(config["stages"][TEMPLATE]["environment_variables"]["FLOE_SENDER"]).rpartition("@")[2]
        if domain != tenant.sending_domain:
            leftovers.append("@" + re.escape(domain))
        for path, document in made.items():
            # The dev files carry a dev value this module does not know how to replace: stop, never deploy it.
            left = re.search("|".join(leftovers), json.dumps(document))
            if left:
                raise TenantFileError(f"{path}: {left.group(0)!r} of {TEMPLATE!r} is left in tenant {tenant.name!r}")
    config["stages"][tenant.name] = made.pop(chalice_dir / "config.json")
    return {chalice_dir / "config.json": _dumps(config), **{path: _dumps(doc) for path, doc in made.items()}}


def generate(tenant: Tenant, chalice_dir: Path = CHALICE) -> list[Path]:
    """Write the tenant's stage and policy files; the files whose content changed."""
    changed = []
    for path, text in rendered(tenant, chalice_dir).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def drift(tenants_dir: Path = TENANTS, chalice_dir: Path = CHALICE) -> list[str]:
    """What differs between the tenant files and the checked-in stages and policy files (empty: nothing)."""
    out = []
    tenants = all_tenants(tenants_dir)
    for tenant in tenants:
        for path, text in rendered(tenant, chalice_dir).items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                out.append(f"{path.name} is not what tenants/{tenant.name}.toml makes")
    stages = set(json.loads((chalice_dir / "config.json").read_text(encoding="utf-8"))["stages"])
    out.extend(f"stage {s!r} has no tenant file" for s in sorted(stages - {t.name for t in tenants}))
    return out


# ---------------------------------------------------------------------------------------------------- deploy


class DeployError(RuntimeError):
    """The deploy cannot start; the message says what to do."""


def deploy_plan(tenant: Tenant, template: Path, env: dict[str, str]) -> list[list[str]]:
    """The AWS CLI commands that upload the code and create or update the stack `floe-<tenant>`."""
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or tenant.deploy.region
    if not region:
        raise DeployError(f"no region: set [deploy] region in tenants/{tenant.name}.toml or AWS_REGION")
    bucket = env.get("FLOE_ARTIFACT_BUCKET") or tenant.deploy.artifact_bucket
    if not bucket:
        raise DeployError(
            f"no artifact bucket: set [deploy] artifact_bucket in tenants/{tenant.name}.toml or FLOE_ARTIFACT_BUCKET "
            "(an S3 bucket in the target account and region)"
        )
    packaged = template.with_name("packaged.yaml")
    return [
        ["aws", "cloudformation", "package", "--region", region, "--template-file", str(template),
         "--s3-bucket", bucket, "--s3-prefix", f"floe-{tenant.name}", "--output-template-file", str(packaged)],
        ["aws", "cloudformation", "deploy", "--region", region, "--template-file", str(packaged),
         "--stack-name", f"floe-{tenant.name}", "--no-fail-on-empty-changeset",
         "--capabilities", "CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND",
         "--tags", f"floe:tenant={tenant.name}",
         "--parameter-overrides", f"Tenant={tenant.name}", f"AlarmEmail={tenant.alarm_email or ''}"],
    ]  # fmt: skip


def preflight(tenant: Tenant, env: dict[str, str]) -> None:
    """DeployError unless credentials and the AWS CLI are there (checked before anything is built or sent)."""
    import boto3

    # Found as the AWS CLI finds them: environment, AWS_PROFILE, shared files, SSO, instance or container role.
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or tenant.deploy.region
    if boto3.Session(region_name=region).get_credentials() is None:
        raise DeployError(
            f"no AWS credentials: sign in to the account of tenant {tenant.name} first (`aws configure`, "
            "`aws sso login` with AWS_PROFILE set, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). "
            f"Packaging needs none: `make package TENANT={tenant.name}`"
        )
    if shutil.which("aws", path=env.get("PATH")) is None:
        raise DeployError("the AWS CLI (`aws`) is not on PATH: install it (https://aws.amazon.com/cli/)")


# ------------------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.tenants", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write the stage and policy files of these tenants (default: all)")
    gen.add_argument("names", nargs="*")
    commands.add_parser("check", help="exit 1 when a stage or policy file is not what its tenant file makes")
    dep = commands.add_parser("deploy", help="upload the packaged template and deploy stack floe-<name>")
    dep.add_argument("name")
    dep.add_argument("--template", type=Path, help="the `make package` output (build/<name>/sam.json)")
    dep.add_argument("--check", action="store_true", help="only check credentials, bucket, region and the CLI")
    return parser


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ) if env is None else env
    try:
        if args.command == "generate":
            tenants = [load(tenant_path(n)) for n in args.names] if args.names else all_tenants()
            for tenant in tenants:
                for path in generate(tenant):
                    print(f"wrote {path.relative_to(PROJECT)}")
            return 0
        if args.command == "check":
            problems = drift()
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print("run `python -m chalicelib.tenants generate`", file=sys.stderr)
            return 1 if problems else 0
        tenant = load(tenant_path(args.name))
        template = args.template or PROJECT / "build" / tenant.name / "sam.json"
        plan = deploy_plan(tenant, template, env)
        preflight(tenant, env)
        if args.check:
            return 0
        if not template.exists():
            raise DeployError(f"{template} does not exist: run `make package TENANT={tenant.name}` first")
        for command in plan:
            print("+ " + " ".join(command), flush=True)
            subprocess.run(command, check=True, env=env)
        return 0
    except (TenantFileError, DeployError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"error: `{' '.join(exc.cmd[:3])}` failed with exit code {exc.returncode}", file=sys.stderr)
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
