"""EventBridge → SQS → the real Celery worker, against moto running as a server on loopback.

The worker runs in this process (a thread), so it sees the test database and in-process monkeypatches;
it reaches moto only through AWS_ENDPOINT_URL, as a separate worker process would (DOMAIN.md §4.3).
"""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests

from config.celery import app
from incidents.models import Finding, InboundPayload, Incident, QuarantinedDocument
from incidents.services import ingest_sources
from incidents.tasks import sqs_consume_task
from tests.fixtures import GUARDDUTY, load_guardduty
from tests.worker import running_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# A queue of this test process's own, as in tests/incidents/test_worker.py (same name, set once).

GUARDDUTY_PATTERN = {"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"]}
FIXTURES = [
    "wire/Discovery_Kubernetes_SuccessfulAnonymousAccess.json",
    "wire/Execution_Kubernetes_ExecInKubeSystemPod.json",
    "wire/Policy_Kubernetes_AnonymousAccessGranted.json",
]


@pytest.fixture(autouse=True)
def roles(role_groups) -> None:
    """Transactional tests flush the migration-made role groups after each test; recreate them."""


@pytest.fixture
def aws(moto_server: str, monkeypatch) -> Iterator[str]:
    """A clean moto with this test's credentials and endpoint in the environment."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    yield moto_server
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)


@pytest.fixture
def sqs(aws: str) -> Any:
    return boto3.client("sqs")


@pytest.fixture
def queue_url(sqs: Any, aws: str) -> str:
    """A queue (1 s visibility: fast redelivery) that an EventBridge GuardDuty rule delivers to."""
    url = sqs.create_queue(QueueName=f"guardduty-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "1"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    rule_arn = events.put_rule(Name="guardduty-findings", EventPattern=json.dumps(GUARDDUTY_PATTERN))["RuleArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule="guardduty-findings", Targets=[{"Id": "watchpost", "Arn": arn}])
    return url


@pytest.fixture
def consumer(settings) -> Iterator[None]:
    """The real worker, with short long-polls so a run ends soon after the queue is drained."""
    settings.WATCHPOST_SQS_WAIT_SECONDS = 2
    settings.WATCHPOST_SQS_CONSUME_SECONDS = 20
    with running_worker(shutdown_timeout=30):
        yield
    with app.connection_for_write() as connection:  # no task of this test left for the next one
        connection.default_channel.queue_purge(app.conf.task_default_queue)


def put_findings(documents: list[dict[str, Any]]) -> None:
    events = boto3.client("events")
    entries = [
        {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": json.dumps(d)} for d in documents
    ]
    response = events.put_events(Entries=entries)
    assert response["FailedEntryCount"] == 0


def queue_depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_findings_from_eventbridge_are_ingested_once_and_deleted(consumer, playbook, sqs, queue_url) -> None:
    # given: three findings and a repeat of the first, delivered by the EventBridge rule
    documents = [load_guardduty(path) for path in FIXTURES]
    put_findings([*documents, documents[0]])
    assert queue_depth(sqs, queue_url) == 4
    # when
    sqs_consume_task.delay(queue_url)
    # then
    assert wait_for(lambda: InboundPayload.objects.filter(source="sqs", processed_at__isnull=False).count() == 4)
    assert wait_for(lambda: queue_depth(sqs, queue_url) == 0)
    assert Finding.objects.count() == 3 and Incident.objects.count() == 3
    assert {f.finding_id for f in Finding.objects.all()} == {d["id"] for d in documents}
    statuses = [payload.counts for payload in InboundPayload.objects.filter(source="sqs")]
    assert sum(counts["created"] for counts in statuses) == 3
    assert sum(counts["duplicate"] for counts in statuses) == 1
    meta = InboundPayload.objects.filter(source="sqs").first().meta
    assert meta["queue"] == queue_url and meta["receive_count"] == 1 and meta["message_id"]


def test_broken_body_is_quarantined_and_the_message_deleted(consumer, playbook, sqs, queue_url) -> None:
    # given
    body = (GUARDDUTY / "bad" / "not_json.txt").read_text(encoding="utf-8")
    message_id = sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]
    # when
    sqs_consume_task.delay(queue_url)
    # then
    assert wait_for(lambda: QuarantinedDocument.objects.filter(payload__meta__message_id=message_id).exists())
    assert wait_for(lambda: queue_depth(sqs, queue_url) == 0)
    quarantined = QuarantinedDocument.objects.get(payload__meta__message_id=message_id)
    assert quarantined.reason.startswith("invalid JSON")
    assert quarantined.payload.status == InboundPayload.Status.REJECTED
    assert Finding.objects.count() == 0


def test_message_that_keeps_failing_is_retried_then_quarantined(
    consumer, playbook, sqs, queue_url, settings, monkeypatch
) -> None:
    # given: processing breaks for one finding's body (the worker runs in this process, so this applies)
    settings.WATCHPOST_SQS_MAX_RECEIVES = 3
    poison, healthy = (load_guardduty(path) for path in FIXTURES[:2])
    real_process = ingest_sources.payload_process_stored

    def process(payload: InboundPayload):
        if poison["id"].encode() in bytes(InboundPayload.objects.get(pk=payload.pk).body):
            raise RuntimeError("database went away")
        return real_process(payload)

    monkeypatch.setattr(ingest_sources, "payload_process_stored", process)
    put_findings([poison, healthy])
    # when
    sqs_consume_task.delay(queue_url)
    # then: the healthy one is ingested; the poison one comes back until its third receive, then gives up
    reason = "failed 3 times: RuntimeError('database went away')"
    assert wait_for(lambda: QuarantinedDocument.objects.filter(reason=reason).exists())
    assert wait_for(lambda: queue_depth(sqs, queue_url) == 0)
    assert list(Finding.objects.values_list("finding_id", flat=True)) == [healthy["id"]]
    poison_payloads = [p for p in InboundPayload.objects.filter(source="sqs") if poison["id"].encode() in bytes(p.body)]
    assert sorted(p.meta["receive_count"] for p in poison_payloads) == [1, 2, 3]
    gave_up = QuarantinedDocument.objects.get(reason=reason).payload
    assert gave_up.status == InboundPayload.Status.REJECTED and gave_up.meta["receive_count"] == 3
