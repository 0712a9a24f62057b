"""R5: 30% of GuardDuty calls throttled: every finding still arrives, and attempts stay under the caps.

Real boto3 over HTTP against a loopback GuardDuty endpoint (fake_guardduty) that answers a seeded 30% of
requests with ThrottlingException (HTTP 429). Two layers absorb it: botocore's standard retry mode
(max_attempts=3 retries, so at most 4 attempts per call: integrations.aws.session.CLIENT_CONFIG) and
the task's own retry (incidents.tasks.AWS_RETRY, at most 5 retries, each resuming from the cursor).
The control turns both off and must lose data. The Athena half of R5 is test_athena_throttling.py.
"""

import random

import pytest
from botocore.config import Config

from incidents.services.ingest_sources import guardduty_poll
from incidents.tasks import AWS_RETRY, guardduty_poll_task
from integrations.aws import guardduty_api
from integrations.aws.session import CLIENT_CONFIG
from integrations.errors import TransientIntegrationError
from integrations.models import AwsAccount, PollCursor
from tests.reliability.conftest import START_MS, finding_ids_stored, timed_findings
from tests.reliability.fake_guardduty import FakeGuardDuty

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

N = 400
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"


def throttle_30_percent(seed: int):  # type: ignore[no-untyped-def]
    chance = random.Random(seed)  # seeded: the same faults on every run
    return lambda number, operation: chance.random() < 0.3


@pytest.fixture
def cursor(playbook, monkeypatch) -> PollCursor:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    account = AwsAccount.objects.create(
        name="prod", account_id="111122223333", regions="us-east-1", detector_ids={"us-east-1": DETECTOR}
    )
    return PollCursor.objects.create(account=account, region="us-east-1", detector_id=DETECTOR)


def test_throttled_guardduty_calls_lose_nothing_and_attempts_stay_capped(cursor, monkeypatch) -> None:
    # given: 400 findings (8 pages) behind an endpoint that throttles 30% of requests
    findings = timed_findings(N)
    with FakeGuardDuty(findings, fault=throttle_30_percent(seed=8)) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_GUARDDUTY", fake.url)
        # when: the poll task runs (its retries inline, without the countdown)
        result = guardduty_poll_task.apply(args=[cursor.pk])
    # then: everything arrived
    assert result.successful(), result.result
    assert finding_ids_stored() == {f["id"] for f in findings}
    cursor.refresh_from_db()
    assert cursor.updated_at_ms == START_MS + (N - 1) * 1000 and cursor.last_error == ""
    # and: the faults were real, and no call went past botocore's cap (max_attempts=3 retries: 4 in all)
    throttled = sum(1 for entry in fake.log if entry.status == 429)
    assert 0.15 < throttled / len(fake.log) < 0.5, (throttled, len(fake.log))  # ~30%, on a small sample
    cap = CLIENT_CONFIG.retries["total_max_attempts"]
    assert cap == 4 and {entry.max_attempts for entry in fake.log} == {cap}
    assert max(entry.attempt for entry in fake.log) <= cap
    assert any(entry.attempt > 1 for entry in fake.log)  # botocore did retry
    # and: task runs (a ListFindings without nextToken starts one) stay within 1 + max_retries
    runs = sum(1 for e in fake.log if e.operation == "ListFindings" and "nextToken" not in e.body and e.status == 200)
    assert 1 <= runs <= 1 + AWS_RETRY["max_retries"]


def test_control_without_retries_throttling_loses_findings(cursor, monkeypatch) -> None:
    # given: the same endpoint; botocore makes one attempt per call and nothing retries the task
    monkeypatch.setattr(guardduty_api, "CLIENT_CONFIG", Config(retries={"mode": "standard", "total_max_attempts": 1}))
    findings = timed_findings(N)
    with FakeGuardDuty(findings, fault=throttle_30_percent(seed=8)) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_GUARDDUTY", fake.url)
        # when / then: the first throttled call ends the run, and the findings after it are missing
        with pytest.raises(TransientIntegrationError, match="ThrottlingException"):
            guardduty_poll(cursor_id=cursor.pk)
    assert len(finding_ids_stored()) < N
