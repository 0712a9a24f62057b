"""The SQS queue EventBridge delivers GuardDuty findings to (rule: source aws.guardduty,
detail-type "GuardDuty Finding"; target: the queue).

IAM permissions (the worker's own credentials, the default chain): sqs:ReceiveMessage and
sqs:DeleteMessage on the queue; kms:Decrypt on its key when the queue uses a customer-managed KMS key.
"""

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from integrations.aws.session import aws_client, aws_errors

# https://sqs.<region>.amazonaws.com/<account>/<name> (also the legacy <region>.queue.amazonaws.com form)
_REGION_IN_URL = re.compile(r"^https?://(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d+)\.(?:queue\.)?amazonaws\.com")


@dataclass(frozen=True)
class SqsMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int  # ApproximateReceiveCount, including this receive


def _region_of(queue_url: str) -> str | None:
    match = _REGION_IN_URL.match(queue_url)
    return match.group(1) if match else None  # None: AWS_DEFAULT_REGION (e.g. moto on loopback)


@lru_cache(maxsize=16)
def _cached_client(region: str | None, endpoint: str) -> Any:
    del endpoint  # only part of the cache key: boto3 reads AWS_ENDPOINT_URL itself
    return aws_client("sqs", region)


def _client(queue_url: str) -> Any:
    # Clients are thread-safe and costly to build; one per region (and endpoint) per process.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SQS") or os.environ.get("AWS_ENDPOINT_URL", "")
    return _cached_client(_region_of(queue_url), endpoint)


def messages_receive(
    *, queue_url: str, wait_seconds: int = 20, max_messages: int = 10, visibility_timeout: int | None = None
) -> list[SqsMessage]:
    """Long-poll the queue once; an empty list when nothing arrived within `wait_seconds`."""
    request: dict[str, Any] = {
        "QueueUrl": queue_url,
        "WaitTimeSeconds": wait_seconds,
        "MaxNumberOfMessages": max_messages,
        "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
    }
    if visibility_timeout is not None:
        request["VisibilityTimeout"] = visibility_timeout
    with aws_errors(f"SQS ReceiveMessage {queue_url}"):
        response = _client(queue_url).receive_message(**request)
    return [
        SqsMessage(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message.get("Body", ""),
            receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
        )
        for message in response.get("Messages", [])
    ]


def message_delete(*, queue_url: str, receipt_handle: str) -> None:
    with aws_errors(f"SQS DeleteMessage {queue_url}"):
        _client(queue_url).delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)
