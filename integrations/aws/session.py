"""boto3 sessions per configured account, and the one place SDK errors become ours.

IAM permissions: the worker's own identity needs `sts:AssumeRole` on each configured role ARN; each
role's trust policy names that identity and requires the configured `sts:ExternalId`. The role itself
needs what the callers use: guardduty:ListDetectors, guardduty:ListFindings, guardduty:GetFindings
(`guardduty_api`); the SQS consumer needs sqs:ReceiveMessage and sqs:DeleteMessage on its queue (`sqs`).

Endpoints: boto3 itself honours `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` (tests point them at
moto on loopback), so nothing here overrides endpoints.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from integrations.errors import PermanentIntegrationError, TransientIntegrationError

# A few quick retries inside botocore (standard mode); longer backoff is the Celery task's job.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)
SESSION_NAME = "watchpost-poller"
# Reference: botocore/retries/standard.py (throttling codes) and the AWS SDK "Retry behavior" reference.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


def error_describe(exc: ClientError) -> tuple[str, int, str]:
    """(code, HTTP status, message) of a botocore ClientError."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return str(error.get("Code", "")), status, str(error.get("Message", ""))


def error_translate(exc: Exception, *, action: str) -> Exception:
    """A botocore exception → TransientIntegrationError or PermanentIntegrationError, naming the call."""
    if isinstance(exc, ClientError):
        code, status, message = error_describe(exc)
        text = f"{action}: {code or 'error'} (HTTP {status or '?'}): {message}".rstrip(": ")
        if code in THROTTLING_CODES or status == 429 or status >= 500:
            return TransientIntegrationError(text)
        return PermanentIntegrationError(text)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return TransientIntegrationError(f"{action}: cannot reach AWS ({exc})")
    return PermanentIntegrationError(f"{action}: {exc}")  # no credentials, invalid parameters …


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """`with aws_errors("GuardDuty ListFindings"): client.list_findings(...)`."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise error_translate(exc, action=action) from exc


def aws_client(service: str, region: str | None) -> Any:
    """A client with Watchpost's own credentials (the default chain) and CLIENT_CONFIG's retries and timeouts."""
    return boto3.session.Session().client(service, region_name=region, config=CLIENT_CONFIG)


def _sts_client(region: str | None) -> Any:
    return aws_client("sts", region)


def _session_name(account_id: str) -> str:
    # RoleSessionName: 2-64 characters of [\w+=,.@-]; it shows up in the customer's CloudTrail.
    return re.sub(r"[^\w+=,.@-]", "-", f"{SESSION_NAME}-{account_id}")[:64]


def account_session(
    *, account_id: str, role_arn: str = "", external_id: str = "", region: str | None = None
) -> boto3.session.Session:
    """A session with the account's credentials: AssumeRole (+ ExternalId) when a role is set, else the default chain.

    Assumed credentials last an hour and are not refreshed: take a new session per task run.
    """
    if not role_arn:
        return boto3.session.Session(region_name=region)
    params = {"RoleArn": role_arn, "RoleSessionName": _session_name(account_id), "DurationSeconds": 3600}
    if external_id:
        params["ExternalId"] = external_id
    with aws_errors(f"STS AssumeRole {role_arn}"):
        credentials = _sts_client(region).assume_role(**params)["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )
