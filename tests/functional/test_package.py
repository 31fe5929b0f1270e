"""`chalice package --merge-template infra/resources.json` builds a stack that lints clean and agrees with the code.

The packaging inputs (app, chalicelib, .chalice config and policies, requirements, infra) are copied to a temporary
directory first, so the run neither reads nor grows the project's `.chalice/deployments` cache. Chalice builds the
dependency layer of the zip with pip (from the configured index or mirror); the rest takes about a second.

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
  policy file says (the authorizer may only read API keys).
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

from chalicelib.api.gateway import GATEWAY_RESPONSES, body
from chalicelib.local.provision import MAX_RECEIVES, queue_names
from chalicelib.storage.models import MODELS, STREAMED, table_definitions

PROJECT = Path(__file__).resolve().parents[2]
STAGE = "dev"
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


@dataclass(frozen=True)
class Packaged:
    template: dict[str, Any]
    text: str
    plain: dict[str, Any]  # the same stage packaged without the merge template: what Chalice generates
    zip_names: frozenset[str]
    stage_env: dict[str, str]


def _copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "venv")
    shutil.copy2(PROJECT / "app.py", dest / "app.py")
    shutil.copy2(PROJECT / "requirements.txt", dest / "requirements.txt")
    for folder in ("chalicelib", "infra", ".chalice", "vendor"):
        if (PROJECT / folder).is_dir():
            shutil.copytree(PROJECT / folder, dest / folder, ignore=ignore)


def _chalice_package(project: Path, out: Path, *, merge: bool) -> None:
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION}
    env.pop("AWS_PROFILE", None)
    args = ["package", "--stage", STAGE, *(["--merge-template", MERGE_TEMPLATE] if merge else []), str(out)]
    code = "import sys; from chalice.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"chalice {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packaged]:
    project = tmp_path_factory.mktemp("project")
    _copy_project(project)
    merged_out, plain_out = project / "build-merged", project / "build-plain"
    # One after the other: both runs share the copy's dependency cache.
    _chalice_package(project, merged_out, merge=True)
    _chalice_package(project, plain_out, merge=False)
    text = (merged_out / "sam.json").read_text()
    with zipfile.ZipFile(merged_out / "deployment.zip") as zipped:
        names = frozenset(zipped.namelist())
    yield Packaged(
        template=json.loads(text),
        text=text,
        plain=json.loads((plain_out / "sam.json").read_text()),
        zip_names=names,
        stage_env=stage_setting(STAGE, "environment_variables"),
    )
    shutil.rmtree(project, ignore_errors=True)


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
        if a["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
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


def test_merge_patches_only_resources_chalice_generates(packaged: Packaged) -> None:
    merge = json.loads((PROJECT / MERGE_TEMPLATE).read_text())
    patches = {name: r for name, r in merge["Resources"].items() if "Type" not in r}
    generated = packaged.plain["Resources"]
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


def test_queue_names_are_the_ones_the_app_subscribes_to(packaged: Packaged) -> None:
    tenant = packaged.stage_env["FLOE_TENANT"]
    queues = resources(packaged.template, "AWS::SQS::Queue")
    plain = {(f, e): p for f, e, p in sqs_events(packaged.plain)}
    merged = sqs_events(packaged.template)
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


def test_stream_sources_read_the_tables_the_app_names_and_dead_letter_what_fails(packaged: Packaged) -> None:
    template, tenant = packaged.template, packaged.stage_env["FLOE_TENANT"]
    tables = table_names(template, tenant)
    queues = resources(template, "AWS::SQS::Queue")
    plain = {(f, e): p for f, e, p in stream_events(packaged.plain)}
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
            if a["Properties"]["MetricName"] == "IteratorAge"
            and [resolve(d["Value"], tenant) for d in a["Properties"]["Dimensions"]] == [name]
        ]
        assert len(lag) == 1, f"{where}: no alarm on how far behind the stream it is"
    prefix = packaged.stage_env["FLOE_TABLE_PREFIX"]
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
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "dynamodb:GetItem"}
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
    assert statements == [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": steps_queue}]
    assert not role.get("ManagedPolicyArns")


def test_deployment_zip_carries_the_app_and_its_requirements(packaged: Packaged) -> None:
    assert {"app.py", "chalicelib/__init__.py", "chalicelib/config.py"} <= packaged.zip_names
    top_level = {name.split("/", 1)[0] for name in packaged.zip_names}
    for line in (PROJECT / "requirements.txt").read_text().splitlines():
        requirement = re.split(r"[=<>~!\[; ]", line.split("#", 1)[0].strip(), maxsplit=1)[0]
        if requirement:
            assert requirement.lower().replace("-", "_") in top_level, requirement


# Actions IAM cannot narrow to a resource; sns:Publish to a phone number (SMS) has no resource ARN either.
UNSCOPED_ACTIONS = {"states:ListStateMachines", "states:SendTaskSuccess", "states:SendTaskFailure", "sns:Publish"}


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
    files = policy_files(STAGE)
    default = stage_setting(STAGE, "iam_policy_file")
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
                    assert set(as_list(statement["Action"])) <= UNSCOPED_ACTIONS, statement
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
