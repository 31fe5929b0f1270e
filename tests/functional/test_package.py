"""`make package TENANT=<t>` builds, for two tenants, stacks that lint clean, agree with the code and stay apart.

The packaging inputs (app, chalicelib, .chalice config and policies, tenant files, Makefile, requirements, infra) are
copied to a temporary directory first, so the run neither reads nor grows the project's `.chalice/deployments` cache.
Each tenant (dev, acme) is packaged once per module with the real `make package`, with every AWS credential source
removed: packaging works offline as far as AWS goes. Chalice builds the dependency layer of the zip with pip (from
the configured index or mirror); the rest takes about a second.

Checked against the code, so infra cannot drift from it:
- every DynamoDB table and its key schema, attribute definitions and indexes equal `models.table_definitions()`;
  exactly the `models.STREAMED` tables have a stream (old and new images), TTL attributes are the models' own;
- every function carries every `FLOE_*` variable that `chalicelib/config.py` reads, the queue URLs and the Step
  Functions role taken from the stack's own resources;
- the queue names are those the app subscribes to (`chalice package` without the merge) and the local stack makes;
- every SQS event source reports batch item failures, and its queue has a dead-letter queue (with the local stack's
  redrive limit), an alarm on it, and a visibility timeout of at least 6x the consumer's timeout;
- every stream event source reads the stream of the table the app names, reports batch item failures, retries a
  bounded number of times with bisection, and sends what still fails to an alarmed dead-letter queue;
- API Gateway's own answers are `api.gateway.GATEWAY_RESPONSES`, in the deployed API definition;
- each function's role allows what its event sources need, only on the tenant's resources, and no more than its
  policy file says (the authorizer may only read API keys);
- no IAM statement, in the policy files or the template, allows `*` or `service:*` actions, and every resource is
  the tenant's own unless the action is on the short list of those IAM cannot narrow (`UNSCOPABLE`, with reasons);
- the two tenants' physical names are apart: no name of one appears in the other's stack;
- every function, the API and the flows' state machines are traced, every function logs to a group with retention;
- the alarms (failed or throttled executions, dead-letter queues, step worker errors, SES bounce and complaint
  rates, API 5xx, stream lag) exist and notify the alarm topic.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from pynamodb.attributes import TTLAttribute

from chalicelib.api.gateway import GATEWAY_HEADERS, GATEWAY_RESPONSES, body
from chalicelib.local.provision import MAX_RECEIVES, queue_names
from chalicelib.storage.models import MODELS, STREAMED, table_definitions

PROJECT = Path(__file__).resolve().parents[2]
# The tenants packaged: dev is also the template of every other tenant's stage.
TENANTS = ("dev", "acme")
REGION = "eu-west-1"
MERGE_TEMPLATE = "infra/resources.json"
# The functions Chalice generates for app.py: the merge template patches them by these logical ids.
GENERATED_FUNCTIONS = {
    "APIHandler",
    "ApiKey",  # the API key authorizer
    "StepWorker",
    "EnrollmentWorker",
    "ImportWorker",
    "ContactChanges",
    "CrmChanges",
    "ParticipantChanges",
    "SesEventWorker",
}
# A region and account to try the policies' wildcard ARNs on.
ACCOUNT = "123456789012"
# A stream's label is the time it was enabled; the policies must allow any.
STREAM_LABEL = "2024-01-01T00:00:00.000"
# Every place the AWS SDKs and CLI find credentials, switched off: packaging must not need any.
NO_CREDENTIALS = {
    "AWS_CONFIG_FILE": "/nonexistent/aws/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws/credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@dataclass(frozen=True)
class Packaged:
    tenant: str
    template: dict[str, Any]
    text: str
    zip_names: frozenset[str]
    stage_env: dict[str, str]
    # The same stage packaged without the merge template (what Chalice generates); made for dev only.
    plain: dict[str, Any] | None = None


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment without any AWS credentials or region (plus `extra`)."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    return {**env, **NO_CREDENTIALS, **extra}


def _copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "venv")
    for name in ("app.py", "Makefile", "requirements.txt", "requirements-local.txt", "requirements-dev.txt"):
        shutil.copy2(PROJECT / name, dest / name)
    for folder in ("chalicelib", "infra", ".chalice", "tenants", "vendor"):
        if (PROJECT / folder).is_dir():
            shutil.copytree(PROJECT / folder, dest / folder, ignore=ignore)


def _make_package(project: Path, tenant: str) -> Path:
    """`make package TENANT=<tenant>` in the copy, with the project's virtualenv and no AWS credentials."""
    venv = Path(sys.executable).parents[1]
    # -o: the virtualenv is ready; make must not try to install into it.
    args = ["make", "-o", str(venv / ".installed-dev"), "package", f"TENANT={tenant}", f"VENV={venv}"]
    done = subprocess.run(args, cwd=project, env=offline_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return project / "build" / tenant


def _chalice_package(project: Path, out: Path, *, stage: str) -> None:
    """Chalice's own template of a stage, without the merge template."""
    env = {**offline_env(), "AWS_DEFAULT_REGION": REGION}
    args = ["package", "--stage", stage, str(out)]
    code = "import sys; from chalice.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"chalice {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Packaged]]:
    project = tmp_path_factory.mktemp("project")
    _copy_project(project)
    # One after the other: the runs share the copy's dependency cache.
    built = {tenant: _make_package(project, tenant) for tenant in TENANTS}
    plain_out = project / "build-plain"
    _chalice_package(project, plain_out, stage="dev")
    out = {}
    for tenant, folder in built.items():
        text = (folder / "sam.json").read_text()
        with zipfile.ZipFile(folder / "deployment.zip") as zipped:
            names = frozenset(zipped.namelist())
        out[tenant] = Packaged(
            tenant=tenant,
            template=json.loads(text),
            text=text,
            zip_names=names,
            stage_env=stage_setting(tenant, "environment_variables"),
            plain=json.loads((plain_out / "sam.json").read_text()) if tenant == "dev" else None,
        )
    yield out
    shutil.rmtree(project, ignore_errors=True)


@pytest.fixture(scope="module", params=TENANTS)
def packaged(request: pytest.FixtureRequest, builds: dict[str, Packaged]) -> Packaged:
    """Each tenant's stack in turn."""
    return builds[request.param]


@pytest.fixture(scope="module")
def dev(builds: dict[str, Packaged]) -> Packaged:
    return builds["dev"]


def plain_of(built: Packaged) -> dict[str, Any]:
    assert built.plain is not None
    return built.plain


# ---------------------------------------------------------------------------------------------------------- helpers


def chalice_config() -> dict[str, Any]:
    return dict(json.loads((PROJECT / ".chalice" / "config.json").read_text()))


def stage_setting(stage: str, key: str) -> Any:
    """A stage's value of `key` as Chalice reads it: the stage's own, else the top level's (env vars: merged)."""
    config = chalice_config()
    if key == "environment_variables":
        return {**config.get(key, {}), **config["stages"][stage].get(key, {})}
    return config["stages"][stage].get(key, config.get(key))


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == kind}


def resolve(value: Any, tenant: str) -> str | None:
    """The value of a name as CloudFormation computes it for `Tenant=tenant`; None for anything else."""
    if isinstance(value, str):
        return value
    if value == {"Ref": "Tenant"}:
        return tenant
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        text = value["Fn::Sub"].replace("${Tenant}", tenant)
        return None if "${" in text else text
    return None


def arn_target(value: Any) -> str | None:
    """The logical id whose Arn `value` is (`Fn::GetAtt` or `Fn::Sub` of `${X.Arn}`)."""
    if isinstance(value, dict):
        if isinstance(value.get("Fn::GetAtt"), list) and value["Fn::GetAtt"][1:] == ["Arn"]:
            return str(value["Fn::GetAtt"][0])
        if isinstance(value.get("Fn::Sub"), str):
            found = re.fullmatch(r"\$\{(\w+)\.Arn\}", value["Fn::Sub"])
            return found.group(1) if found else None
    return None


def events_of(template: dict[str, Any], kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(function logical id, event name, event properties) of every event source of this kind."""
    return [
        (function, name, event["Properties"])
        for function, r in resources(template, "AWS::Serverless::Function").items()
        for name, event in r["Properties"].get("Events", {}).items()
        if event.get("Type") == kind
    ]


def sqs_events(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return events_of(template, "SQS")


def stream_events(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return events_of(template, "DynamoDB")


def table_names(template: dict[str, Any], tenant: str) -> dict[str, str]:
    """Logical id → table name of every table of the stack."""
    return {
        logical_id: str(resolve(table["Properties"]["TableName"], tenant))
        for logical_id, table in resources(template, "AWS::DynamoDB::Table").items()
    }


def dlq_alarms(template: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    """The alarms that fire when this queue holds a message."""
    return [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        and a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
        and a["Properties"]["Threshold"] == 0
    ]


def role_statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """The statements of the role a function runs as."""
    role = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = template["Resources"][role]["Properties"]["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def allows(statements: list[dict[str, Any]], action: str, arn: str) -> bool:
    """Whether an Allow statement (with IAM's `*` wildcards, no conditions) grants `action` on `arn`."""
    return any(
        s["Effect"] == "Allow"
        and "Condition" not in s
        and any(fnmatch.fnmatchcase(action, a) for a in as_list(s["Action"]))
        and any(fnmatch.fnmatchcase(arn, r) for r in as_list(s["Resource"]))
        for s in statements
    )


def keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["KeyType"], k["AttributeName"]) for k in sorted(schema, key=lambda k: k["KeyType"])]


def projection(p: dict[str, Any]) -> tuple[str, list[str]]:
    return p["ProjectionType"], sorted(p.get("NonKeyAttributes", []))


def model_table(definition: dict[str, Any]) -> dict[str, Any]:
    """`table_definitions()` in CloudFormation's terms."""
    attributes = {a["AttributeName"]: a["AttributeType"] for a in definition["attribute_definitions"]}
    for index in definition["global_secondary_indexes"] + definition["local_secondary_indexes"]:
        attributes.update({a["AttributeName"]: a["AttributeType"] for a in index.get("attribute_definitions", [])})
    return {
        "attributes": attributes,
        "keys": keys(definition["key_schema"]),
        "gsis": {
            i["index_name"]: (keys(i["key_schema"]), projection(i["projection"]))
            for i in definition["global_secondary_indexes"]
        },
        "lsis": {
            i["index_name"]: (keys(i["key_schema"]), projection(i["projection"]))
            for i in definition["local_secondary_indexes"]
        },
    }


def template_table(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "attributes": {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]},
        "keys": keys(props["KeySchema"]),
        "gsis": {
            i["IndexName"]: (keys(i["KeySchema"]), projection(i["Projection"]))
            for i in props.get("GlobalSecondaryIndexes", [])
        },
        "lsis": {
            i["IndexName"]: (keys(i["KeySchema"]), projection(i["Projection"]))
            for i in props.get("LocalSecondaryIndexes", [])
        },
    }


def config_env_names() -> set[str]:
    """The FLOE_* variables `chalicelib/config.py` reads."""
    source = (PROJECT / "chalicelib" / "config.py").read_text()
    return set(re.findall(r"""env\.get\(\s*["'](FLOE_[A-Z0-9_]+)["']""", source))


# ------------------------------------------------------------------------------------------------------------ tests


def test_template_passes_cfn_lint(packaged: Packaged) -> None:
    matches = lint(packaged.text, regions=[REGION])
    errors = [m for m in matches if m.rule.id.startswith("E")]
    for m in matches:
        if m.rule.id.startswith("W"):
            warnings.warn(f"cfn-lint {m.rule.id} line {m.linenumber}: {m.message}", stacklevel=1)
    assert errors == [], "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in errors)


def test_merge_patches_only_resources_chalice_generates(dev: Packaged) -> None:
    merge = json.loads((PROJECT / MERGE_TEMPLATE).read_text())
    patches = {name: r for name, r in merge["Resources"].items() if "Type" not in r}
    generated = plain_of(dev)["Resources"]
    assert set(patches) <= set(generated), (
        f"patches of resources Chalice does not make: {set(patches) - set(generated)}"
    )
    assert set(patches) >= GENERATED_FUNCTIONS
    for name, patch in patches.items():
        for event in patch.get("Properties", {}).get("Events", {}):
            assert event in generated[name]["Properties"]["Events"], f"{name} has no generated event {event}"


def test_tables_match_the_models(packaged: Packaged) -> None:
    tenant, prefix = packaged.stage_env["FLOE_TENANT"], packaged.stage_env["FLOE_TABLE_PREFIX"]
    found: dict[str, dict[str, Any]] = {}
    for logical_id, table in resources(packaged.template, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        name = resolve(props["TableName"], tenant)
        assert name is not None and name.startswith(prefix), f"{logical_id}: {props['TableName']}"
        found[name.removeprefix(prefix)] = props
    definitions = table_definitions()
    assert set(found) == set(definitions)
    for suffix, definition in definitions.items():
        props = found[suffix]
        assert template_table(props) == model_table(definition), suffix
        assert props["BillingMode"] == "PAY_PER_REQUEST", suffix
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, suffix
        assert props["SSESpecification"]["SSEEnabled"] is True, suffix
    streamed = {model.Meta.suffix for model in STREAMED}  # type: ignore[attr-defined]
    for model in MODELS:
        suffix, props = model.Meta.suffix, found[model.Meta.suffix]  # type: ignore[attr-defined]
        # The change worker decodes old and new images; a table that is not followed has no stream to pay for.
        expected = {"StreamViewType": "NEW_AND_OLD_IMAGES"} if suffix in streamed else None
        assert props.get("StreamSpecification") == expected, suffix
        ttl = [name for name, a in model.get_attributes().items() if isinstance(a, TTLAttribute)]
        expected_ttl = {"AttributeName": ttl[0], "Enabled": True} if ttl else None
        assert props.get("TimeToLiveSpecification") == expected_ttl, suffix


def test_every_function_gets_the_settings_and_the_stacks_resources(packaged: Packaged) -> None:
    functions = resources(packaged.template, "AWS::Serverless::Function")
    assert set(functions) == GENERATED_FUNCTIONS
    needed = config_env_names()
    assert {"FLOE_TENANT", "FLOE_STEPS_QUEUE_URL", "FLOE_SFN_ROLE_ARN"} <= needed  # the regex still reads config.py
    for name, function in functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert needed <= set(env), f"{name} lacks {sorted(needed - set(env))}"
        assert env["FLOE_STEPS_QUEUE_URL"] == {"Ref": "StepsQueue"}, name
        assert env["FLOE_ENROLL_QUEUE_URL"] == {"Ref": "EnrollmentsQueue"}, name
        assert env["FLOE_IMPORTS_QUEUE_URL"] == {"Ref": "ImportsQueue"}, name
        assert env["FLOE_SFN_ROLE_ARN"] == {"Fn::GetAtt": ["StatesRole", "Arn"]}, name
        # The stack computes the names from its Tenant parameter; the stage's values must agree with them.
        tenant = packaged.stage_env["FLOE_TENANT"]
        assert resolve(env["FLOE_TENANT"], tenant) == tenant, name
        assert resolve(env["FLOE_TABLE_PREFIX"], tenant) == packaged.stage_env["FLOE_TABLE_PREFIX"], name


def test_queue_names_are_the_ones_the_app_subscribes_to(dev: Packaged) -> None:
    tenant = dev.stage_env["FLOE_TENANT"]
    queues = resources(dev.template, "AWS::SQS::Queue")
    plain = {(f, e): p for f, e, p in sqs_events(plain_of(dev))}
    merged = sqs_events(dev.template)
    assert {(f, e) for f, e, _ in merged} == set(plain)
    for function, event, props in merged:
        # Chalice names the queue in an ARN; the merge points the event at the stack's queue instead.
        subscribed = str(plain[(function, event)]["Queue"]["Fn::Sub"]).rpartition(":")[2]
        queue = arn_target(props["Queue"])
        assert queue in queues, f"{function}.{event} does not read a queue of the stack: {props['Queue']}"
        assert resolve(queues[queue]["Properties"]["QueueName"], tenant) == subscribed
    stack_names = {resolve(q["Properties"]["QueueName"], tenant) for q in queues.values()}
    assert set(queue_names(tenant).values()) <= stack_names  # what the local stack provisions


def test_event_sources_report_batch_item_failures_and_queues_have_dead_letter_queues(packaged: Packaged) -> None:
    template = packaged.template
    queues = resources(template, "AWS::SQS::Queue")
    functions = resources(template, "AWS::Serverless::Function")
    events = sqs_events(template)
    assert {f for f, _, _ in events} == {"StepWorker", "EnrollmentWorker", "ImportWorker"}
    for function, event, props in events:
        where = f"{function}.{event}"
        assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], where
        queue = queues[str(arn_target(props["Queue"]))]["Properties"]
        redrive = queue.get("RedrivePolicy")
        assert redrive, f"{where}: the queue has no dead-letter queue"
        assert int(redrive["maxReceiveCount"]) == MAX_RECEIVES, where
        dlq = arn_target(redrive["deadLetterTargetArn"])
        assert dlq in queues and "RedrivePolicy" not in queues[dlq]["Properties"], where
        # AWS: a queue's visibility timeout at least 6x the function timeout plus the batching window.
        timeout = int(functions[function]["Properties"]["Timeout"])
        window = int(props.get("MaximumBatchingWindowInSeconds", 0))
        assert int(queue["VisibilityTimeout"]) >= 6 * timeout + window, where
        assert len(dlq_alarms(template, str(dlq))) == 1, f"{where}: no alarm on {dlq}"


def test_stream_sources_read_the_tables_the_app_names_and_dead_letter_what_fails(dev: Packaged) -> None:
    template, tenant = dev.template, dev.stage_env["FLOE_TENANT"]
    tables = table_names(template, tenant)
    queues = resources(template, "AWS::SQS::Queue")
    plain = {(f, e): p for f, e, p in stream_events(plain_of(dev))}
    merged = stream_events(template)
    assert {(f, e) for f, e, _ in merged} == set(plain)
    followed: set[str] = set()
    for function, event, props in merged:
        where = f"{function}.{event}"
        # app.py names the stream by its table; the stack points the event at that table's real stream.
        named = str(plain[(function, event)]["Stream"]).split(":table/", 1)[1].split("/stream/", 1)[0]
        assert isinstance(props["Stream"], dict) and list(props["Stream"]) == ["Fn::GetAtt"], where
        table, attribute = props["Stream"]["Fn::GetAtt"]
        assert attribute == "StreamArn" and tables.get(table) == named, where
        followed.add(named)
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], where
        assert props["BisectBatchOnFunctionError"] is True, where
        # -1 (the default) retries a poisoned record until it expires, holding up its shard for 24 hours.
        assert 0 < int(props["MaximumRetryAttempts"]) <= 10, where
        # Records written before the event source mapping exists are read too (a redelivery is harmless).
        assert props["StartingPosition"] == "TRIM_HORIZON", where
        on_failure = props["DestinationConfig"]["OnFailure"]
        dlq = arn_target(on_failure["Destination"])
        assert dlq in queues and on_failure["Type"] == "SQS", where
        assert "RedrivePolicy" not in queues[str(dlq)]["Properties"], where
        assert len(dlq_alarms(template, str(dlq))) == 1, f"{where}: no alarm on {dlq}"
        name = resolve(template["Resources"][function]["Properties"]["FunctionName"], tenant)
        lag = [
            a["Properties"]
            for a in resources(template, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("MetricName") == "IteratorAge"
            and [resolve(d["Value"], tenant) for d in a["Properties"]["Dimensions"]] == [name]
        ]
        assert len(lag) == 1, f"{where}: no alarm on how far behind the stream it is"
    prefix = dev.stage_env["FLOE_TABLE_PREFIX"]
    assert followed == {prefix + model.Meta.suffix for model in STREAMED}  # type: ignore[attr-defined]


def test_gateway_answers_are_the_error_shape_of_the_app(packaged: Packaged) -> None:
    """The gateway responses live in the API definition itself, so every deployment of the API carries them."""
    answers = packaged.template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"][
        "x-amazon-apigateway-gateway-responses"
    ]
    assert set(answers) == set(GATEWAY_RESPONSES)
    for kind, (status, code, message) in GATEWAY_RESPONSES.items():
        answer = answers[kind]
        shaped = json.loads(answer["responseTemplates"]["application/json"])
        assert shaped == json.loads(body(kind)) == {"error": {"code": code, "message": message, "details": []}}, kind
        if kind.startswith("DEFAULT_"):
            # A status on a default answer would replace the status of every answer of its class
            # (a throttled request would no longer be a 429): the default answers keep API Gateway's.
            assert "statusCode" not in answer, kind
        else:
            assert answer["statusCode"] == str(status), kind
        headers = {f"gatewayresponse.header.{k}": f"'{v}'" for k, v in GATEWAY_HEADERS.get(kind, {}).items()}
        assert answer.get("responseParameters", {}) == headers, kind
    assert answers["THROTTLED"]["responseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}


def test_each_role_allows_what_its_event_sources_need(packaged: Packaged) -> None:
    template, tenant = packaged.template, packaged.stage_env["FLOE_TENANT"]
    queues = resources(template, "AWS::SQS::Queue")
    tables = table_names(template, tenant)

    def queue_arn(logical_id: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{resolve(queues[logical_id]['Properties']['QueueName'], tenant)}"

    for function, event, props in sqs_events(template):
        statements, arn = role_statements(template, function), queue_arn(str(arn_target(props["Queue"])))
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert allows(statements, action, arn), f"{function}.{event}: {action} on {arn}"
    for function, event, props in stream_events(template):
        statements = role_statements(template, function)
        table = tables[props["Stream"]["Fn::GetAtt"][0]]
        stream = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/{STREAM_LABEL}"
        for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
            assert allows(statements, action, stream), f"{function}.{event}: {action} on {stream}"
        # Lambda sends the failed batch's description to the on-failure destination as the function's role.
        dlq = queue_arn(str(arn_target(props["DestinationConfig"]["OnFailure"]["Destination"])))
        assert allows(statements, "sqs:SendMessage", dlq), f"{function}.{event}: sqs:SendMessage on {dlq}"
        # The change workers only derive data: they consume no queue, run no flow, send nothing.
        actions = {a for s in statements for a in as_list(s["Action"])}
        assert not {a for a in actions if a.startswith(("states:", "ses:", "sns:", "iam:"))}, function
        assert "sqs:ReceiveMessage" not in actions and "dynamodb:Scan" not in actions, function
    # The authorizer runs on every marketer request with untrusted input: it may read API keys, nothing else.
    authorizer = role_statements(template, "ApiKey")
    actions = {a for s in authorizer for a in as_list(s["Action"])}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "dynamodb:GetItem", *TRACE_WRITES}
    keys_table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{tables['ApiKeysTable']}"
    assert allows(authorizer, "dynamodb:GetItem", keys_table)
    for other in set(tables.values()) - {tables["ApiKeysTable"]}:
        assert not allows(authorizer, "dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{other}")


def test_state_machines_role_may_only_send_to_the_steps_queue(packaged: Packaged) -> None:
    role = packaged.template["Resources"]["StatesRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "states.amazonaws.com"}]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    steps_queue = {"Fn::GetAtt": ["StepsQueue", "Arn"]}
    # Its one effect on the world: a message on the steps queue. The rest is writing the executions' traces.
    assert [s for s in statements if s["Resource"] != "*"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": steps_queue}
    ]
    unscoped = {a for s in statements if s["Resource"] == "*" for a in as_list(s["Action"])}
    assert unscoped == {*TRACE_WRITES, "xray:GetSamplingRules", "xray:GetSamplingTargets"}
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements)
    assert not role.get("ManagedPolicyArns")


def test_deployment_zip_carries_the_app_and_its_requirements(dev: Packaged) -> None:
    assert {"app.py", "chalicelib/__init__.py", "chalicelib/config.py"} <= dev.zip_names
    top_level = {name.split("/", 1)[0] for name in dev.zip_names}
    for line in (PROJECT / "requirements.txt").read_text().splitlines():
        requirement = re.split(r"[=<>~!\[; ]", line.split("#", 1)[0].strip(), maxsplit=1)[0]
        if requirement:
            assert requirement.lower().replace("-", "_") in top_level, requirement


# The actions allowed on every resource (`"Resource": "*"`), each with why IAM cannot narrow it. Nothing else may be.
UNSCOPABLE = {
    "states:ListStateMachines": "a List action has no resource: finding a published machine by name",
    "states:SendTaskSuccess": "no resource-level permissions: the task token is the authority",
    "states:SendTaskFailure": "no resource-level permissions: the task token is the authority",
    "sns:Publish": "an SMS goes to a phone number, which has no ARN",
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions for writing traces",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions for writing traces",
    "xray:GetSamplingRules": "read by the traced state machines; no resource-level permissions",
    "xray:GetSamplingTargets": "read by the traced state machines; no resource-level permissions",
}
TRACE_WRITES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_files(stage: str) -> dict[str, str]:
    """Chalice function name → the IAM policy file its role gets in this stage (its own, else the stage's)."""
    config = chalice_config()
    default = stage_setting(stage, "iam_policy_file")
    own = {
        name: settings["iam_policy_file"]
        for name, settings in config["stages"][stage].get("lambda_functions", {}).items()
        if "iam_policy_file" in settings
    }
    return {"api_handler": default, **own}


def chalice_name(handler: str) -> str:
    """A generated function's name in `.chalice/config.json`, from its handler (`app.app` is the API)."""
    name = handler.rpartition(".")[2]
    return "api_handler" if name == "app" else name


def test_each_function_runs_with_its_policy_file(packaged: Packaged) -> None:
    files = policy_files(packaged.tenant)
    default = stage_setting(packaged.tenant, "iam_policy_file")
    for function in GENERATED_FUNCTIONS:
        name = chalice_name(packaged.template["Resources"][function]["Properties"]["Handler"])
        document = json.loads((PROJECT / ".chalice" / files.get(name, default)).read_text())
        assert role_statements(packaged.template, function) == document["Statement"], function


@pytest.mark.parametrize("stage", sorted(chalice_config()["stages"]))
def test_stage_policy_is_scoped_to_the_stages_tenant(stage: str) -> None:
    """Every stage (one per tenant) has its own policy files naming only that tenant's resources."""
    env = stage_setting(stage, "environment_variables")
    tenant = env["FLOE_TENANT"]
    merge = json.loads((PROJECT / MERGE_TEMPLATE).read_text())
    resources_ = merge["Resources"]
    assert re.fullmatch(merge["Parameters"]["Tenant"]["AllowedPattern"], tenant)
    assert env.get("FLOE_TABLE_PREFIX", f"floe-{tenant}-") == f"floe-{tenant}-"
    assert stage_setting(stage, "autogen_policy") is False
    policy_file = stage_setting(stage, "iam_policy_file")
    assert policy_file, f"stage {stage} has no iam_policy_file"
    files = policy_files(stage)
    by_file: dict[str, dict[str, list[str]]] = {}
    for file in set(files.values()):
        assert file.startswith(f"policy-{tenant}"), f"{file} is not named after tenant {tenant}"
        statements = json.loads((PROJECT / ".chalice" / file).read_text())["Statement"]
        by_action = by_file.setdefault(file, {})
        for statement in statements:
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                by_action.setdefault(action, []).extend(as_list(statement["Resource"]))
            for arn in as_list(statement["Resource"]):
                if arn == "*":
                    assert set(as_list(statement["Action"])) <= set(UNSCOPABLE), statement
                elif arn.endswith(":identity/*"):
                    # Any verified identity, but only with the stage's sender domain as From.
                    sender_pattern = statement["Condition"]["StringLike"]["ses:FromAddress"]
                    assert fnmatch.fnmatchcase(env["FLOE_SENDER"], sender_pattern), (
                        env["FLOE_SENDER"],
                        sender_pattern,
                    )
                else:
                    assert re.search(rf"[/:]floe-{tenant}(-|$)", arn), f"{file}: {arn} is not of tenant {tenant}"
    by_action = by_file[policy_file]
    assert sorted(by_action["sqs:ReceiveMessage"]) == sorted(
        f"arn:aws:sqs:*:*:{q}" for q in queue_names(tenant).values()
    )
    states_role = resolve(resources_["StatesRole"]["Properties"]["RoleName"], tenant)
    assert by_action["iam:PassRole"] == [f"arn:aws:iam::*:role/{states_role}"]
    configuration_set = resolve(resources_["ConfigurationSet"]["Properties"]["Name"], tenant)
    assert f"arn:aws:ses:*:*:configuration-set/{configuration_set}" in by_action["ses:SendEmail"]
    assert env.get("FLOE_SES_CONFIGURATION_SET", configuration_set) == configuration_set
    functions = {f: r for f, r in resources_.items() if f in GENERATED_FUNCTIONS}
    assert set(functions) == GENERATED_FUNCTIONS
    for function, patch in functions.items():
        name = resolve(patch["Properties"]["FunctionName"], tenant)
        assert name is not None and name.startswith(f"floe-{tenant}-"), function
        # The function's own policy file, found by the name Chalice gives it (the merge names it floe-<t>-<name>).
        own = files.get(name.removeprefix(f"floe-{tenant}-"), policy_file)
        stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}:log-stream:2024/01/01/x"
        assert any(fnmatch.fnmatchcase(stream, arn) for arn in by_file[own]["logs:PutLogEvents"]), name


# ------------------------------------------------------------------------------------------- tenants and alarms

# Where each type of resource keeps its physical name (the one AWS makes unique per account and region).
NAMED_BY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Serverless::Api": "Name",
    "AWS::SNS::Topic": "TopicName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Logs::ResourcePolicy": "PolicyName",
    "AWS::Events::Rule": "Name",
    "AWS::SES::ConfigurationSet": "Name",
    "AWS::SecretsManager::Secret": "Name",
}
# Resources with no name of their own in the account: they belong to a named resource of the stack.
UNNAMED = {
    "AWS::Lambda::Permission",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SES::ConfigurationSetEventDestination",
}
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}


@dataclass(frozen=True)
class Names:
    """The values of a stack's names and references as CloudFormation computes them for its tenant."""

    template: dict[str, Any]
    tenant: str

    def of(self, logical_id: str) -> str | None:
        """The physical name of a resource (Ref of a function, table, rule, ... is its name)."""
        resource = self.template["Resources"][logical_id]
        key = NAMED_BY.get(resource["Type"])
        return self.value(resource["Properties"][key]) if key in resource.get("Properties", {}) else None

    def all(self) -> dict[str, str]:
        return {logical_id: n for logical_id in self.template["Resources"] if (n := self.of(logical_id)) is not None}

    def value(self, value: Any) -> str:
        if isinstance(value, str):
            return self.sub(value)
        if isinstance(value, dict) and list(value) == ["Ref"]:
            return self.sub("${" + value["Ref"] + "}")
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            return self.sub(value["Fn::Sub"])
        if isinstance(value, dict) and list(value) == ["Fn::GetAtt"] and value["Fn::GetAtt"][1] == "QueueName":
            return self.sub("${" + value["Fn::GetAtt"][0] + "}")
        raise AssertionError(f"a value the test cannot compute: {value}")

    def render(self, value: Any) -> Any:
        """`value` with every Ref and Fn::Sub inside it computed."""
        if isinstance(value, dict) and (list(value) == ["Ref"] or isinstance(value.get("Fn::Sub"), str)):
            return self.value(value)
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value

    def sub(self, text: str) -> str:
        def one(found: re.Match[str]) -> str:
            ref = found.group(1)
            if ref == "Tenant":
                return self.tenant
            if ref in PSEUDO:
                return PSEUDO[ref]
            name = self.of(ref)
            assert name is not None, f"${{{ref}}} names nothing"
            return name

        return re.sub(r"\$\{([\w:]+)\}", one, text)


def test_tenants_are_named_apart(builds: dict[str, Packaged]) -> None:
    """Two tenants' stacks can live in one account and region: every physical name carries its own tenant."""
    names = {tenant: Names(built.template, tenant).all() for tenant, built in builds.items()}
    for tenant, built in builds.items():
        for logical_id, resource in built.template["Resources"].items():
            kind = resource["Type"]
            assert kind in NAMED_BY or kind in UNNAMED, f"{logical_id}: is a {kind} named in the account?"
            # Without a RoleName, CloudFormation names a role after the stack (floe-<tenant>) and the logical id.
            assert logical_id in names[tenant] or kind in UNNAMED or kind == "AWS::IAM::Role", logical_id
    for tenant, named in names.items():
        assert len(named) > 40, named  # tables, queues, functions, topics, alarms, log groups, ...
        for logical_id, name in named.items():
            assert re.search(rf"(^|/)floe-{tenant}([-/]|$)", name), f"{tenant}: {logical_id} is named {name!r}"
        kinds = {(builds[tenant].template["Resources"][logical_id]["Type"], n) for logical_id, n in named.items()}
        assert len(kinds) == len(named), "two resources of one kind share a name"
    first, second = TENANTS
    assert not set(names[first].values()) & set(names[second].values())
    for tenant, other in ((first, second), (second, first)):
        # Nothing of the other tenant in this stack: not its names, settings, policies or sending domain.
        text = builds[tenant].text
        assert not re.search(rf"floe-{other}\b", text), f"{tenant}'s stack names {other}'s resources"
        other_domain = builds[other].stage_env["FLOE_SENDER"].rpartition("@")[2]
        assert other_domain not in text


def iam_statements(built: Packaged) -> list[tuple[str, dict[str, Any]]]:
    """(where, statement) of every policy of the stack: its policy files, the roles', topics' and logs' policies."""
    found: list[tuple[str, dict[str, Any]]] = []
    for file in sorted(set(policy_files(built.tenant).values())):
        document = json.loads((PROJECT / ".chalice" / file).read_text())
        found.extend((file, s) for s in document["Statement"])
    for logical_id, resource in built.template["Resources"].items():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            if isinstance(document, dict) and isinstance(document.get("Fn::Sub"), str):
                document = json.loads(document["Fn::Sub"])  # a policy CloudFormation takes as a string
            found.extend((logical_id, s) for s in as_list(document["Statement"]))
    return found


def is_stack_resource(value: Any, template: dict[str, Any]) -> bool:
    """Whether a Resource value names a resource of this stack (Ref, GetAtt Arn, or an ARN built with Fn::Sub)."""
    resources_ = template["Resources"]
    if isinstance(value, dict) and list(value) == ["Ref"]:
        return value["Ref"] in resources_
    if arn_target(value) is not None:
        return arn_target(value) in resources_
    if isinstance(value, str) and "${" in value:
        refs = [r for r in re.findall(r"\$\{([\w:.]+)\}", value) if not r.startswith("AWS::")]
        return bool(refs) and all(r.split(".")[0] in resources_ for r in refs)
    return False


def test_no_statement_allows_every_action_and_resources_are_scoped(builds: dict[str, Packaged]) -> None:
    for tenant, built in builds.items():
        domain = built.stage_env["FLOE_SENDER"].rpartition("@")[2]
        statements = iam_statements(built)
        assert len(statements) > 20
        for where, statement in statements:
            said = f"{tenant} {where}: {statement}"
            assert statement["Effect"] == "Allow", said
            assert "NotAction" not in statement and "NotResource" not in statement, said
            actions = as_list(statement["Action"])
            for action in actions:
                assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), f"{said}: {action} is not one action"
            if "Principal" in statement:
                # A resource policy: only AWS services may use the resource, and only it is named.
                assert set(statement["Principal"]) == {"Service"}, said
                if "Resource" not in statement:  # a role's trust policy
                    assert actions == ["sts:AssumeRole"], said
                    continue
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert set(actions) <= set(UNSCOPABLE), f"{said}: {set(actions) - set(UNSCOPABLE)} on *"
                elif is_stack_resource(resource, built.template):
                    continue
                elif isinstance(resource, str) and resource.endswith(":identity/*"):
                    # In the SES sandbox the recipients' identities are authorized too; `From` is pinned instead.
                    assert set(actions) <= {"ses:SendEmail", "ses:SendRawEmail"}, said
                    assert statement["Condition"] == {"StringLike": {"ses:FromAddress": f"*@{domain}"}}, said
                else:
                    assert isinstance(resource, str) and re.search(rf"[:/]floe-{tenant}([-/*]|$)", resource), (
                        f"{said}: {resource} is not a resource of tenant {tenant}"
                    )


def alarm_metrics(alarm: dict[str, Any], names: Names) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of what an alarm watches, directly or in its metric math."""
    stats = [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
    if "MetricName" in alarm:
        stats.append(alarm)
    return [
        (m["Namespace"], m["MetricName"], {d["Name"]: names.value(d["Value"]) for d in m.get("Dimensions", [])})
        for m in stats
    ]


def test_alarms_watch_what_goes_wrong_and_notify_the_alarm_topic(packaged: Packaged) -> None:
    template, tenant = packaged.template, packaged.tenant
    names = Names(template, tenant)
    assert template["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    alarms = {logical_id: a["Properties"] for logical_id, a in resources(template, "AWS::CloudWatch::Alarm").items()}
    for logical_id, alarm in alarms.items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "AlarmTopic"}], logical_id
        # No data is no trouble: a quiet tenant sends nothing, fails nothing.
        assert alarm["TreatMissingData"] == "notBreaching", logical_id
        assert alarm["AlarmDescription"], logical_id
    watched = {
        (ns, metric, tuple(sorted(dims.items())))
        for a in alarms.values()
        for ns, metric, dims in alarm_metrics(a, names)
    }

    def watches(namespace: str, metric: str, **dimensions: str) -> bool:
        return (namespace, metric, tuple(sorted(dimensions.items()))) in watched

    assert watches("AWS/Events", "TriggeredRules", RuleName=f"floe-{tenant}-executions-failed")
    assert watches("AWS/States", "ThrottledEvents", ServiceMetric="StateTransition")
    for api in ("StartExecution", "SendTaskSuccess", "SendTaskFailure"):
        assert watches("AWS/States", "ThrottledEvents", APIName=api), api
    assert watches("AWS/Lambda", "Errors", FunctionName=f"floe-{tenant}-step_worker")
    # API Gateway's metrics name the API by its name, which the stack sets per tenant.
    assert names.of("RestAPI") == f"floe-{tenant}"
    assert watches(
        "AWS/ApiGateway", "5XXError", ApiName=f"floe-{tenant}", Stage=stage_setting(tenant, "api_gateway_stage")
    )
    for queue in (
        "StepsDeadLetterQueue",
        "EnrollmentsDeadLetterQueue",
        "ImportsDeadLetterQueue",
        "ChangesDeadLetterQueue",
    ):
        assert len(dlq_alarms(template, queue)) == 1, queue
    # SES reviews an account at a 5% bounce rate and a 0.1% complaint rate: the alarms come before that.
    for metric, review in (("Reputation.BounceRate", 0.05), ("Reputation.ComplaintRate", 0.001)):
        [alarm] = [a for a in alarms.values() if a.get("Namespace") == "AWS/SES" and a["MetricName"] == metric]
        assert 0.5 * review <= alarm["Threshold"] < review, metric
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    # The alarm on throttling adds its metrics up and alarms on the sum only.
    [throttling] = [a for a in alarms.values() if any(m == "ThrottledEvents" for _, m, _ in alarm_metrics(a, names))]
    returned = [m for m in throttling["Metrics"] if m["ReturnData"]]
    assert len(returned) == 1 and all(m["Id"] in returned[0]["Expression"] for m in throttling["Metrics"][1:])


def execution_event(state_machine: str, status: str) -> Any:
    """What Step Functions sends EventBridge when an execution of a standard state machine changes status."""
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{state_machine}"
    return {
        "version": "0",
        "id": "e1",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": ACCOUNT,
        "time": "2024-01-01T00:00:00Z",
        "region": REGION,
        "resources": [arn.replace(":stateMachine:", ":execution:") + ":run-1"],
        "detail": {
            "executionArn": arn.replace(":stateMachine:", ":execution:") + ":run-1",
            "stateMachineArn": arn,
            "status": status,
        },
    }


def test_failed_executions_of_the_tenants_flows_are_kept_and_alarmed(packaged: Packaged) -> None:
    """The app creates the state machines at run time, so the stack follows them by name prefix."""
    from moto.events.models import EventPattern

    from chalicelib.config import from_env
    from chalicelib.orchestration.stepfunctions import StateMachines

    template, tenant = packaged.template, packaged.tenant
    names = Names(template, tenant)
    rule = template["Resources"]["ExecutionsFailedRule"]["Properties"]
    matcher = EventPattern.load(json.dumps(names.render(rule["EventPattern"])))
    # The names the app gives its state machines in this stack (the stage's settings).
    machines = StateMachines(None, role_arn="", name_prefix=from_env(packaged.stage_env).state_machine_prefix)
    ours = machines.name("welcome", 3)
    assert matcher.matches_event(execution_event(ours, "FAILED"))
    assert matcher.matches_event(execution_event(ours, "TIMED_OUT"))
    # A flow ended on purpose is stopped (ABORTED); that is not trouble.
    for status in ("RUNNING", "SUCCEEDED", "ABORTED"):
        assert not matcher.matches_event(execution_event(ours, status)), status
    others = [f"floe-{t}-welcome-v3" for t in TENANTS if t != tenant] + [f"floe-{tenant}x-welcome-v3", "welcome-v3"]
    for other in others:
        assert not matcher.matches_event(execution_event(other, "FAILED")), other
    # Each failed execution is kept in a log group with retention, which EventBridge may write to.
    [target] = rule["Targets"]
    group = names.sub(target["Arn"]["Fn::Sub"]).rpartition(":log-group:")[2]
    assert group == names.of("FailedExecutionsLogGroup")
    assert template["Resources"]["FailedExecutionsLogGroup"]["Properties"]["RetentionInDays"] > 0
    [allowed] = [s for where, s in iam_statements(packaged) if where == "FailedExecutionsLogPolicy"]
    assert "events.amazonaws.com" in allowed["Principal"]["Service"]
    assert names.sub(allowed["Resource"]).endswith(f":log-group:{group}:*")


def test_functions_api_and_executions_are_traced_and_functions_keep_their_logs(packaged: Packaged) -> None:
    template, tenant = packaged.template, packaged.tenant
    names = Names(template, tenant)
    retention = stage_setting(tenant, "log_retention_in_days")
    assert retention and stage_setting(tenant, "xray") is True
    log_groups = resources(template, "AWS::Logs::LogGroup")
    groups = {names.value(g["Properties"]["LogGroupName"]): g["Properties"] for g in log_groups.values()}
    for logical_id, function in resources(template, "AWS::Serverless::Function").items():
        assert function["Properties"]["Tracing"] == "Active", logical_id
        statements = role_statements(template, logical_id)
        for action in TRACE_WRITES:
            assert allows(statements, action, "*"), (logical_id, action)
        group = groups.get(f"/aws/lambda/{names.of(logical_id)}")
        assert group is not None, f"{logical_id} has no log group of its own"
        assert group["RetentionInDays"] == retention, logical_id
    assert all(g.get("RetentionInDays") for g in groups.values()), "a log group keeps its logs forever"
    assert template["Resources"]["RestAPI"]["Properties"]["TracingEnabled"] is True
    # The state machines are traced when created (orchestration.stepfunctions); their role may write traces.
    states = [
        s
        for p in template["Resources"]["StatesRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    ]
    assert all(allows(states, action, "*") for action in TRACE_WRITES)


def test_ses_events_reach_the_event_worker(packaged: Packaged) -> None:
    template = packaged.template
    res = template["Resources"]
    configuration_set = res["ConfigurationSet"]["Properties"]
    assert configuration_set["ReputationOptions"]["ReputationMetricsEnabled"] is True
    destination = res["ConfigurationSetEvents"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "ConfigurationSet"}
    events = destination["EventDestination"]
    assert events["Enabled"] is True and events["SnsDestination"]["TopicARN"] == {"Ref": "SesEventsTopic"}
    assert {"bounce", "complaint", "delivery", "reject"} <= set(events["MatchingEventTypes"])
    [(function, _, subscription)] = events_of(template, "SNS")
    assert function == "SesEventWorker" and is_stack_resource(subscription["Topic"]["Fn::Sub"], template)
    assert "SesEventsTopic" in subscription["Topic"]["Fn::Sub"]
    [publish] = [s for where, s in iam_statements(packaged) if where == "SesEventsTopicPolicy"]
    assert publish["Principal"] == {"Service": "ses.amazonaws.com"} and publish["Action"] == "sns:Publish"
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
