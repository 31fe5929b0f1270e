"""Tenant files make the stages and policies Chalice packages, and `make deploy` deploys only with credentials.

- the checked-in stages and policy files are exactly what `tenants/*.toml` make (regenerating changes nothing);
- a new tenant file gives a stage and policies naming only that tenant, whose settings the app reads back;
- a bad tenant file is refused with every problem and where it is, and nothing is written;
- `make deploy` stops with what to do when there are no AWS credentials; with credentials it runs
  `aws cloudformation package` and `deploy` for stack `floe-<tenant>` with the tenant's bucket and alarm email;
- the flows' state machines are created with X-Ray tracing on.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chalicelib.config import EmailCaps, QuietHours, from_env
from chalicelib.tenants import TenantFileError, all_tenants, drift, generate, load, rendered
from tests.conftest import example
from tests.functional.conftest import Stack
from tests.functional.test_package import offline_env

PROJECT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parents[1]

ZETA = """
name = "zeta"
public_url = "https://go.zeta.example/"
postal_address = "Zeta BV, Stationsplein 1, 3511 ED Utrecht, Netherlands"
phone_region = "NL"
time_zone = "Europe/Amsterdam"
alarm_email = "ops@zeta.example"

[sender]
address = "hello@news.zeta.example"
name = "Zeta"

[quiet_hours]
start = "22:30"
end = "07:00"

[email_caps]
per_week = 4

[forms]
allowed_origins = ["https://WWW.Zeta.example/", "http://localhost:3000"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the tenant files and `.chalice` to generate into."""
    shutil.copytree(PROJECT / "tenants", tmp_path / "tenants")
    shutil.copytree(PROJECT / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    return tmp_path


def files_of(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.json"))}


def tenants_cli(*args: str, env: dict[str, str], cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.tenants", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


# ------------------------------------------------------------------------------------------------ generation


def test_regenerating_every_tenant_changes_nothing(project: Path) -> None:
    """The checked-in stages and policy files are what the tenant files make: nothing drifted or was hand-edited."""
    before = files_of(project / ".chalice")
    tenants = all_tenants(project / "tenants")
    assert {t.name for t in tenants} >= {"dev", "acme"}
    for tenant in tenants:
        assert generate(tenant, project / ".chalice") == [], f"tenants/{tenant.name}.toml makes other files"
    assert files_of(project / ".chalice") == before
    assert drift(PROJECT / "tenants", PROJECT / ".chalice") == []
    assert tenants_cli("check", env=offline_env()).returncode == 0


def test_a_changed_tenant_file_is_drift_until_generated(project: Path) -> None:
    acme = project / "tenants" / "acme.toml"
    acme.write_text(acme.read_text().replace("per_day = 1", "per_day = 2"))
    assert drift(project / "tenants", project / ".chalice") == ["config.json is not what tenants/acme.toml makes"]
    changed = generate(load(acme), project / ".chalice")
    assert [p.name for p in changed] == ["config.json"]
    stage = json.loads((project / ".chalice" / "config.json").read_text())["stages"]["acme"]
    assert stage["environment_variables"]["FLOE_EMAIL_CAPS"] == "day=2,week=3"
    assert drift(project / "tenants", project / ".chalice") == []


def test_a_new_tenant_gets_a_stage_and_policies_of_its_own(project: Path) -> None:
    (project / "tenants" / "zeta.toml").write_text(ZETA)
    chalice = project / ".chalice"
    dev_before = json.loads((chalice / "config.json").read_text())["stages"]["dev"]
    changed = generate(load(project / "tenants" / "zeta.toml"), chalice)
    names = {"config.json", "policy-zeta.json", "policy-zeta-changes.json", "policy-zeta-authorizer.json"}
    assert {p.name for p in changed} == names
    config = json.loads((chalice / "config.json").read_text())
    stage, dev = config["stages"]["zeta"], config["stages"]["dev"]
    assert dev == dev_before  # the template is left alone
    # Shared settings come from the dev stage; the tenant's own from its file.
    for key in ("api_gateway_stage", "autogen_policy", "lambda_timeout", "log_retention_in_days", "xray"):
        assert stage[key] == dev[key], key
    assert stage["autogen_policy"] is False and stage["xray"] is True
    assert stage["iam_policy_file"] == "policy-zeta.json" and stage["tags"] == {"floe:tenant": "zeta"}
    own_files = {f.get("iam_policy_file") for f in stage["lambda_functions"].values()} - {None}
    assert own_files == {"policy-zeta-changes.json", "policy-zeta-authorizer.json"}
    # Nothing of dev is left in the new tenant's files.
    text = json.dumps(stage) + "".join((chalice / n).read_text() for n in names - {"config.json"})
    assert "floe-dev" not in text and "policy-dev" not in text and "dev.floe.example.com" not in text
    # Its policies are dev's with every resource renamed: the same statements, other names.
    for suffix in ("", "-changes", "-authorizer"):
        mine = json.loads((chalice / f"policy-zeta{suffix}.json").read_text())
        devs = json.loads((chalice / f"policy-dev{suffix}.json").read_text())
        assert [s["Action"] for s in mine["Statement"]] == [s["Action"] for s in devs["Statement"]]
    email = next(s for s in json.loads((chalice / "policy-zeta.json").read_text())["Statement"] if s["Sid"] == "Email")
    assert email["Condition"] == {"StringLike": {"ses:FromAddress": "*@news.zeta.example"}}
    assert "arn:aws:ses:*:*:configuration-set/floe-zeta" in email["Resource"]

    # The app reads the tenant's settings back from the stage's environment.
    settings = from_env(stage["environment_variables"])
    assert settings.tenant == "zeta" and settings.table_prefix == "floe-zeta-"
    assert settings.sender == "hello@news.zeta.example" and settings.sender_name == "Zeta"
    assert settings.postal_address.startswith("Zeta BV") and settings.phone_region == "NL"
    assert settings.public_url == "https://go.zeta.example" and settings.configuration_set == "floe-zeta"
    assert settings.time_zone == "Europe/Amsterdam"
    assert settings.quiet_hours == QuietHours(start=_time("22:30"), end=_time("07:00"))
    assert settings.email_caps == EmailCaps(per_day=None, per_week=4)
    assert settings.form_origins == ("https://www.zeta.example", "http://localhost:3000")


def _time(text: str) -> Any:
    from datetime import time

    return time.fromisoformat(text)


def test_the_settings_of_a_stage_without_tenant_defaults_are_empty() -> None:
    settings = from_env({"FLOE_TENANT": "x"})
    assert settings.quiet_hours is None and settings.email_caps == EmailCaps() and settings.form_origins == ()
    assert settings.time_zone == "UTC" and settings.sender_name == "" and settings.postal_address == ""


# A valid file, then one change each, and what the refusal must say.
BAD_FILES = [
    ('name = "zeta"', 'name = "Zeta"', "lower-case letters and digits only"),
    ('name = "zeta"', 'name = "ze-ta"', "lower-case letters and digits only"),
    ('name = "zeta"', 'name = "9zeta"', "starting with a letter"),
    ('name = "zeta"', 'name = "zetazetazetazetazetaz"', "at most 20 characters"),
    ('name = "zeta"', 'name = "omega"', "but the file is named 'zeta'"),
    ('public_url = "https://go.zeta.example/"', 'public_url = "http://go.zeta.example"', "public_url"),
    ('address = "hello@news.zeta.example"', 'address = "hello at zeta"', "sender.address"),
    ('name = "Zeta"', 'name = "Zeta\\r\\nBcc: x@y.example"', "sender.name: Value error, must be a single line"),
    ('phone_region = "NL"', 'phone_region = "XX"', "phone_region"),
    ('time_zone = "Europe/Amsterdam"', 'time_zone = "Mars/Olympus"', "not an IANA time zone"),
    ('start = "22:30"', 'start = "25:00"', "quiet_hours.start"),
    ('start = "22:30"', 'start = "07:00"', "start and end are the same time"),
    ("per_week = 4", "per_week = 4\nper_day = 5", "per_week is smaller than per_day"),
    ("per_week = 4", "per_week = 0", "email_caps.per_week"),
    ('"http://localhost:3000"', '"https://zeta.example/contact"', "no path"),
    ('"http://localhost:3000"', '"zeta.example"', "is not an origin"),
    ('phone_region = "NL"', 'phone_region = "NL"\nphone_regio = "DE"', "phone_regio: Extra inputs are not permitted"),
    ('alarm_email = "ops@zeta.example"', "alarm_email = 3", "alarm_email"),
    ('postal_address = "Zeta BV, Stationsplein 1, 3511 ED Utrecht, Netherlands"', "", "postal_address: Field required"),
]


@pytest.mark.parametrize(("good", "bad", "said"), BAD_FILES)
def test_a_bad_tenant_file_is_refused_with_where_and_why(project: Path, good: str, bad: str, said: str) -> None:
    assert good in ZETA
    path = project / "tenants" / "zeta.toml"
    path.write_text(ZETA.replace(good, bad, 1))
    before = files_of(project / ".chalice")
    with pytest.raises(TenantFileError) as refused:
        generate(load(path), project / ".chalice")
    assert said in str(refused.value)
    assert str(path) in str(refused.value)
    assert files_of(project / ".chalice") == before


def test_tenant_names_are_what_the_stack_accepts() -> None:
    """The tenant file's name rule is the stack's `Tenant` parameter pattern: a valid file always deploys."""
    from chalicelib.tenants import NAME

    merge = json.loads((PROJECT / "infra" / "resources.json").read_text())
    assert merge["Parameters"]["Tenant"]["AllowedPattern"] == f"^{NAME.pattern}$"


def test_every_problem_of_a_file_is_listed_at_once(project: Path) -> None:
    path = project / "tenants" / "zeta.toml"
    path.write_text(ZETA.replace('phone_region = "NL"', 'phone_region = "XX"').replace('"22:30"', '"9:30"'))
    with pytest.raises(TenantFileError) as refused:
        load(path)
    assert "phone_region" in str(refused.value) and "quiet_hours.start" in str(refused.value)


def test_the_command_line_refuses_a_bad_name_and_writes_nothing() -> None:
    before = files_of(PROJECT / ".chalice")
    done = tenants_cli("generate", "Acme-EU", env=offline_env())
    assert done.returncode == 2
    assert "'Acme-EU' is not a tenant name: use lower-case letters and digits only" in done.stderr
    done = tenants_cli("generate", "nosuchtenant", env=offline_env())
    assert done.returncode == 2 and "no such tenant file" in done.stderr
    assert files_of(PROJECT / ".chalice") == before


def test_the_generator_refuses_a_dev_template_it_cannot_rename(project: Path) -> None:
    """A dev-only name the generator does not know about must not end up in another tenant's files."""
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["EXTRA_QUEUE"] = "floe-dev-extra"
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with pytest.raises(TenantFileError, match="'floe-dev' of 'dev' is left in tenant 'acme'"):
        rendered(load(project / "tenants" / "acme.toml"), project / ".chalice")


# ---------------------------------------------------------------------------------------------------- deploy


def test_deploy_without_credentials_stops_with_what_to_do() -> None:
    """`make deploy` checks for credentials before it builds anything."""
    args = ["make", "-o", str(VENV / ".installed-dev"), "deploy", "TENANT=acme", f"VENV={VENV}"]
    done = subprocess.run(args, cwd=PROJECT, env=offline_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "no AWS credentials" in done.stderr and "make package TENANT=acme" in done.stderr
    assert "chalice package" not in done.stdout  # it stopped before packaging


@pytest.fixture
def fake_aws(tmp_path: Path) -> tuple[Path, Path]:
    """An `aws` command on PATH that records its arguments instead of calling AWS."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    script = bin_dir / "aws"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(calls)!r}, 'a') as out:\n    out.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir, calls


def deploy_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return offline_env(PATH=path, AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", **extra)


def test_deploy_with_credentials_packages_and_deploys_the_tenants_stack(
    tmp_path: Path, fake_aws: tuple[Path, Path]
) -> None:
    bin_dir, calls = fake_aws
    template = tmp_path / "build" / "acme" / "sam.json"
    template.parent.mkdir(parents=True)
    template.write_text("{}")
    done = tenants_cli("deploy", "acme", "--template", str(template), env=deploy_env(bin_dir))
    assert done.returncode == 0, done.stderr
    package, deploy = (json.loads(line) for line in calls.read_text().splitlines())
    acme = tomllib.loads((PROJECT / "tenants" / "acme.toml").read_text())

    def option(command: list[str], name: str) -> str:
        return command[command.index(name) + 1]

    assert package[:2] == ["cloudformation", "package"]
    assert option(package, "--template-file") == str(template)
    assert option(package, "--s3-bucket") == acme["deploy"]["artifact_bucket"]
    assert option(package, "--region") == option(deploy, "--region") == acme["deploy"]["region"]
    assert deploy[:2] == ["cloudformation", "deploy"]
    assert option(deploy, "--template-file") == option(package, "--output-template-file")
    assert option(deploy, "--stack-name") == "floe-acme"
    assert {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"} <= set(deploy)
    overrides = deploy[deploy.index("--parameter-overrides") + 1 :]
    assert overrides == ["Tenant=acme", f"AlarmEmail={acme['alarm_email']}"]


def test_deploy_takes_the_bucket_and_region_from_the_environment_first(
    tmp_path: Path, fake_aws: tuple[Path, Path]
) -> None:
    bin_dir, calls = fake_aws
    template = tmp_path / "sam.json"
    template.write_text("{}")
    env = deploy_env(bin_dir, FLOE_ARTIFACT_BUCKET="other-bucket", AWS_REGION="eu-central-1")
    assert tenants_cli("deploy", "acme", "--template", str(template), env=env).returncode == 0
    package = json.loads(calls.read_text().splitlines()[0])
    assert package[package.index("--s3-bucket") + 1] == "other-bucket"
    assert package[package.index("--region") + 1] == "eu-central-1"


def test_deploy_without_a_bucket_or_a_package_says_so(tmp_path: Path, fake_aws: tuple[Path, Path]) -> None:
    bin_dir, calls = fake_aws
    dev = tomllib.loads((PROJECT / "tenants" / "dev.toml").read_text())
    assert "artifact_bucket" not in dev.get("deploy", {})
    done = tenants_cli("deploy", "dev", "--check", env=deploy_env(bin_dir))
    assert done.returncode == 2 and "no artifact bucket" in done.stderr
    done = tenants_cli("deploy", "acme", "--template", str(tmp_path / "missing.json"), env=deploy_env(bin_dir))
    assert done.returncode == 2 and "run `make package TENANT=acme` first" in done.stderr
    assert not calls.exists()  # AWS was never called


# ----------------------------------------------------------------------------------------------- the stack


def test_the_flows_state_machines_are_traced(stack: Stack) -> None:
    doc = example("welcome")
    form = stack.http("POST", "/forms", {"key": doc["trigger"]["form"], "name": "Newsletter"})
    assert form.status_code == 201, form.body
    created = stack.http("POST", "/flows", doc)
    assert created.status_code == 201, created.body
    activated = stack.http("POST", f"/flows/{created.json_body['id']}/activate")
    assert activated.status_code == 200, activated.body
    machines = stack.sfn.list_state_machines()["stateMachines"]
    assert machines
    for machine in machines:
        described = stack.sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])
        assert described["tracingConfiguration"] == {"enabled": True}, machine["name"]
