"""Create in moto what `infra/` creates in AWS: tables, queues with dead-letter queues, the sender identity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.storage import models

# After this many failed deliveries a message goes to the dead-letter queue (as in infra/).
MAX_RECEIVES = 5


@dataclass(frozen=True)
class Queues:
    steps: str
    enrollments: str
    imports: str
    # Where the stream pump describes a batch of change records that failed every retry (as in infra/).
    changes_dlq: str


def queue_names(tenant: str) -> dict[str, str]:
    return {
        "steps": f"floe-{tenant}-steps",
        "enrollments": f"floe-{tenant}-enrollments",
        "imports": f"floe-{tenant}-imports",
    }


def provision(
    sqs: Any,
    sesv2: Any,
    *,
    tenant: str,
    region: str,
    table_prefix: str,
    sender: str,
    host: str | None = None,
    sns: Any = None,
) -> Queues:
    models.bind(table_prefix=table_prefix, region=region, host=host)
    models.create_tables()
    urls: dict[str, str] = {}
    for role, name in queue_names(tenant).items():
        dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        urls[role] = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": "60",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
            },
        )["QueueUrl"]
    changes_dlq = sqs.create_queue(QueueName=f"floe-{tenant}-changes-dlq")["QueueUrl"]
    # SES reports bounces, complaints and deliveries to this topic in a deployment (see infra/).
    if sns is not None:
        sns.create_topic(Name=f"floe-{tenant}-ses-events")
    domain = sender.rpartition("@")[2]
    sesv2.create_email_identity(EmailIdentity=domain)
    return Queues(
        steps=urls["steps"], enrollments=urls["enrollments"], imports=urls["imports"], changes_dlq=changes_dlq
    )
