"""The GuardDuty API poller against a real boto3 client whose calls are answered by botocore's Stubber.

moto has no GuardDuty findings APIs (DOMAIN.md §4.1). The Stubber checks every request we send against
the service model (a wrong parameter name or type fails the test) and the expected parameters exactly.
"""

import copy
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from incidents.models import Finding, InboundPayload, Incident
from incidents.services import ingest_sources
from incidents.services.ingest_sources import guardduty_poll, poll_cursor_ids_enabled, poll_cursors_ensure
from incidents.tasks import guardduty_poll_task
from integrations.aws import guardduty_api
from integrations.aws import session as session_module
from integrations.aws.session import account_session
from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from integrations.models import AwsAccount, PollCursor
from tests.fixtures import load_guardduty

pytestmark = pytest.mark.django_db

DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"
START_MS = 1_714_600_000_000  # 2024-05-01T21:46:40Z
TEMPLATE = load_guardduty("boto3/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finding(n: int, *, count: int = 1) -> dict[str, Any]:
    """Finding number n (boto3 spelling): its own id, updatedAt START_MS + n seconds."""
    document = copy.deepcopy(TEMPLATE)
    document["Id"] = f"{n:032x}"
    document["Arn"] = document["Arn"].rsplit("/", 1)[0] + "/" + document["Id"]
    document["UpdatedAt"] = _iso(START_MS + n * 1000)
    document["Service"]["Count"] = count
    return document


def ms_of(n: int) -> int:
    return START_MS + n * 1000


def ids(numbers: range | list[int]) -> list[str]:
    return [f"{n:032x}" for n in numbers]


@pytest.fixture
def gd(monkeypatch) -> Any:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("guardduty")
    monkeypatch.setattr(guardduty_api, "guardduty_client", lambda **_: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def cursor(playbook) -> PollCursor:
    account = AwsAccount.objects.create(
        name="prod", account_id="111122223333", regions="us-east-1", detector_ids={"us-east-1": DETECTOR}
    )
    return PollCursor.objects.create(account=account, region="us-east-1", detector_id=DETECTOR)


def expect_list(
    stubber: Stubber,
    *,
    since_ms: int,
    ids: list[str],
    token: str | None,
    next_token: str | None,
    archived: bool = False,
) -> None:
    """One ListFindings call; by default the poller asks for active findings only."""
    criteria: dict[str, Any] = {"updatedAt": {"GreaterThanOrEqual": since_ms}}
    if not archived:
        criteria["service.archived"] = {"Equals": ["false"]}
    params: dict[str, Any] = {
        "DetectorId": DETECTOR,
        "FindingCriteria": {"Criterion": criteria},
        "SortCriteria": {"AttributeName": "updatedAt", "OrderBy": "ASC"},
        "MaxResults": 50,
    }
    if token:
        params["NextToken"] = token
    response: dict[str, Any] = {"FindingIds": ids}
    if next_token:
        response["NextToken"] = next_token
    stubber.add_response("list_findings", response, params)


def expect_get(stubber: Stubber, numbers: list[int]) -> None:
    assert len(numbers) <= 50
    stubber.add_response(
        "get_findings",
        {"Findings": [finding(n) for n in numbers]},
        {"DetectorId": DETECTOR, "FindingIds": ids(numbers)},
    )


def expect_pages(stubber: Stubber, *, since_ms: int, pages: list[list[int]]) -> None:
    """ListFindings pages (finding numbers), each followed by its GetFindings calls in chunks of 50."""
    for index, numbers in enumerate(pages):
        expect_list(
            stubber,
            since_ms=since_ms,
            ids=ids(numbers),
            token=f"token-{index}" if index else None,
            next_token=f"token-{index + 1}" if index + 1 < len(pages) else None,
        )
        for start in range(0, len(numbers), 50):
            expect_get(stubber, numbers[start : start + 50])


def test_backfill_reads_every_page_ingests_each_finding_once_and_moves_the_cursor(gd, cursor) -> None:
    # given: 120 findings over three ListFindings pages; the middle one holds 70 ids (two GetFindings calls)
    pages = [list(range(0, 40)), list(range(40, 110)), list(range(110, 120))]
    expect_pages(gd, since_ms=0, pages=pages)
    # when
    counts = guardduty_poll(cursor_id=cursor.pk)
    # then
    assert counts["created"] == 120 and counts["pages"] == 3
    assert Finding.objects.count() == 120 and Incident.objects.count() == 120
    assert InboundPayload.objects.filter(source=InboundPayload.Source.POLLER).count() == 3
    cursor.refresh_from_db()
    assert cursor.updated_at_ms == ms_of(119)
    assert cursor.last_error == "" and cursor.last_run_at is not None


def test_archived_findings_are_fetched_only_when_the_setting_asks(gd, cursor, settings) -> None:
    # given: the setting that also fetches archived findings (suppressed ones included)
    settings.WATCHPOST_POLL_ARCHIVED = True
    # then: the ListFindings criteria carry no archived filter (the Stubber compares them exactly)
    expect_list(gd, since_ms=0, ids=ids(range(3)), token=None, next_token=None, archived=True)
    expect_get(gd, [0, 1, 2])
    # when
    counts = guardduty_poll(cursor_id=cursor.pk)
    # then
    assert counts["created"] == 3


def test_second_run_with_overlapping_ids_creates_nothing(gd, cursor) -> None:
    # given: a first run that read findings 0–9
    expect_pages(gd, since_ms=0, pages=[list(range(10))])
    guardduty_poll(cursor_id=cursor.pk)
    # when: the next run asks from the cursor on and gets the last finding again
    expect_pages(gd, since_ms=ms_of(9), pages=[[9]])
    counts = guardduty_poll(cursor_id=cursor.pk)
    # then
    assert counts["duplicate"] == 1 and counts["created"] == 0
    assert Finding.objects.count() == 10 and Incident.objects.count() == 10
    cursor.refresh_from_db()
    assert cursor.updated_at_ms == ms_of(9)


def test_throttled_middle_page_keeps_the_cursor_on_the_last_committed_page(gd, cursor) -> None:
    # given: page 1 goes through, then GetFindings for page 2 is throttled
    expect_list(gd, since_ms=0, ids=ids(range(50)), token=None, next_token="token-1")
    expect_get(gd, list(range(50)))
    expect_list(gd, since_ms=0, ids=ids(range(50, 100)), token="token-1", next_token="token-2")
    gd.add_client_error("get_findings", service_error_code="ThrottlingException", http_status_code=429)
    # when
    with pytest.raises(TransientIntegrationError, match="ThrottlingException"):
        guardduty_poll(cursor_id=cursor.pk)
    # then: page 1 is kept and the cursor stands at its end
    cursor.refresh_from_db()
    assert cursor.updated_at_ms == ms_of(49)
    assert "ThrottlingException" in cursor.last_error
    assert Finding.objects.count() == 50
    # when: the re-run starts at the cursor: finding 49 once more, then what was left
    expect_pages(gd, since_ms=ms_of(49), pages=[list(range(49, 99)), list(range(99, 120))])
    counts = guardduty_poll(cursor_id=cursor.pk)
    # then: one finding fetched again, everything ingested once
    assert counts["duplicate"] == 1 and counts["created"] == 70
    assert Finding.objects.count() == 120 and Incident.objects.count() == 120
    cursor.refresh_from_db()
    assert cursor.updated_at_ms == ms_of(119) and cursor.last_error == ""


def test_crash_while_ingesting_a_page_leaves_the_cursor_before_that_page(gd, cursor, monkeypatch) -> None:
    # given: the worker dies while processing the second page
    real_process, calls = ingest_sources.payload_process_stored, []

    def process_then_die(payload):
        calls.append(payload.pk)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return real_process(payload)

    monkeypatch.setattr(ingest_sources, "payload_process_stored", process_then_die)
    expect_pages(gd, since_ms=0, pages=[list(range(50)), list(range(50, 100))])
    # when
    with pytest.raises(RuntimeError):
        guardduty_poll(cursor_id=cursor.pk)
    # then: the second page never counted; its body is kept, unprocessed, for the record
    cursor.refresh_from_db()
    assert cursor.updated_at_ms == ms_of(49)
    assert cursor.last_error == "worker lost"
    assert Finding.objects.count() == 50
    assert InboundPayload.objects.filter(status=InboundPayload.Status.RECEIVED).count() == 1


def test_access_denied_is_permanent_and_recorded_on_the_cursor(gd, cursor) -> None:
    # given
    gd.add_client_error(
        "list_findings",
        service_error_code="AccessDeniedException",
        service_message="User: arn:aws:sts::111122223333:assumed-role/watchpost/x is not authorized to perform: "
        "guardduty:ListFindings",
        http_status_code=403,
    )
    # when
    with pytest.raises(PermanentIntegrationError):
        guardduty_poll(cursor_id=cursor.pk)
    # then
    cursor.refresh_from_db()
    assert cursor.updated_at_ms == 0
    assert "GuardDuty ListFindings" in cursor.last_error
    assert "AccessDeniedException (HTTP 403)" in cursor.last_error
    assert "not authorized to perform: guardduty:ListFindings" in cursor.last_error


def test_task_retries_a_throttled_call_then_succeeds(gd, cursor) -> None:
    # given: the first ListFindings is throttled, the retry goes through
    gd.add_client_error("list_findings", service_error_code="ThrottlingException", http_status_code=400)
    expect_pages(gd, since_ms=0, pages=[[1, 2, 3]])
    # when: run eagerly (retries run inline, without the countdown)
    result = guardduty_poll_task.apply(args=[cursor.pk])
    # then
    assert result.successful()
    assert result.result["created"] == 3
    assert Finding.objects.count() == 3


def test_task_does_not_retry_a_permanent_error(gd, cursor) -> None:
    gd.add_client_error("list_findings", service_error_code="AccessDeniedException", http_status_code=403)
    result = guardduty_poll_task.apply(args=[cursor.pk])
    assert result.failed() and isinstance(result.result, PermanentIntegrationError)


def test_cursors_are_made_for_configured_and_discovered_detectors(gd, playbook) -> None:
    # given: one account names its us-east-1 detector; eu-west-1 is discovered; a disabled account is skipped
    account = AwsAccount.objects.create(
        name="prod",
        account_id="111122223333",
        regions='["us-east-1", "eu-west-1"]',
        detector_ids={"us-east-1": DETECTOR},
    )
    AwsAccount.objects.create(name="old", account_id="444455556666", regions="us-west-2", enabled=False)
    gd.add_response("list_detectors", {"DetectorIds": ["0123456789abcdef0123456789abcdef"]}, {})
    # when
    created = poll_cursors_ensure()
    # then
    assert created == 2
    assert set(account.cursors.values_list("region", "detector_id")) == {
        ("us-east-1", DETECTOR),
        ("eu-west-1", "0123456789abcdef0123456789abcdef"),
    }
    # and: a region dropped from the account is no longer polled
    account.regions = "us-east-1"
    account.save()
    assert poll_cursor_ids_enabled() == [account.cursors.get(region="us-east-1").pk]


def test_assumed_role_session_passes_the_external_id(monkeypatch) -> None:
    # given
    sts = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("sts")
    monkeypatch.setattr(session_module, "_sts_client", lambda region: sts)
    role = "arn:aws:iam::111122223333:role/watchpost-reader"
    credentials = {
        "AccessKeyId": "ASIAEXAMPLEEXAMPLE01",
        "SecretAccessKey": "secret-example",
        "SessionToken": "token-example",
        "Expiration": datetime(2030, 1, 1, tzinfo=UTC),
    }
    with Stubber(sts) as stubber:
        stubber.add_response(
            "assume_role",
            {"Credentials": credentials},
            {
                "RoleArn": role,
                "RoleSessionName": "watchpost-poller-111122223333",
                "DurationSeconds": 3600,
                "ExternalId": "wp-7f3a",
            },
        )
        # when
        session = account_session(account_id="111122223333", role_arn=role, external_id="wp-7f3a", region="eu-west-1")
        stubber.assert_no_pending_responses()
    # then
    frozen = session.get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("ASIAEXAMPLEEXAMPLE01", "token-example")
    assert session.region_name == "eu-west-1"


def test_admin_manages_accounts_and_shows_cursors(client, superuser, cursor) -> None:
    # given
    client.force_login(superuser)
    # when: an account is added through the admin form
    response = client.post(
        "/admin/integrations/awsaccount/add/",
        {
            "name": "payments",
            "account_id": "210987654321",
            "role_arn": "arn:aws:iam::210987654321:role/watchpost-reader",
            "external_id": "",
            "regions": "eu-west-1, eu-central-1",
            "detector_ids": "{}",
            "enabled": "on",
            "cursors-TOTAL_FORMS": "0",
            "cursors-INITIAL_FORMS": "0",
        },
    )
    # then: a role without its ExternalId is refused
    assert response.status_code == 200
    assert "Set the ExternalId" in response.content.decode()
    # and: the cursor pages render
    assert client.get(f"/admin/integrations/awsaccount/{cursor.account_id}/change/").status_code == 200
    changelist = client.get("/admin/integrations/pollcursor/")
    assert changelist.status_code == 200 and DETECTOR in changelist.content.decode()
