"""R5 for Athena: 30% of Athena calls throttled: every row arrives, attempts stay capped, no query runs twice.

Real boto3 over HTTP against a loopback Athena endpoint (fake_athena) that answers a seeded 30% of
requests with ThrottlingException, through the real path: `playbooks.tasks.action_run_task` → the
`query.run` handler (`incidents.services.queries.query_run`) → `AthenaEngine` → CSV evidence. Two
layers absorb the faults: botocore's standard retry mode (at most 4 attempts per call:
integrations.aws.session.CLIENT_CONFIG) and the task's own retry (at most 5), which resumes the
execution recorded in the run's progress and, should it start again, sends the same
ClientRequestToken, which Athena (and the fake) answer with the execution already started.

A throttled request is refused before Athena acts on it, so a throttled StartQueryExecution starts
nothing: what could double a query is a task retry after the query started. The seed is one where a
call after the start exhausts botocore's attempts (asserted, so a changed seed or path cannot make
the test vacuous). The controls remove the protections and must break the same checks: without
retries rows are lost; without the resume and with a fresh token per attempt a second query starts.
"""

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from config.celery import app
from incidents.models import Evidence, Incident
from incidents.services import queries
from integrations.aws import session
from integrations.aws.session import CLIENT_CONFIG
from playbooks import actions
from playbooks.models import ActionRun
from playbooks.tasks import action_run_task
from tests.reliability.fake_athena import Cell, FakeAthena

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

N = 10_000  # data rows: with the header, eleven GetQueryResults pages of at most 1,000
# A seed under which the start is throttled and some call after it is throttled 4 times in a row, so
# the task retries with the query started (both asserted below, so a changed seed cannot go unnoticed).
SEED = 160
CAP = 4  # CLIENT_CONFIG: max_attempts=3 retries, so 4 attempts per call
COLUMNS = ["eventtime", "eventsource", "eventname", "sourceipaddress", "errormessage"]
WINDOW = {"since": "2026-11-18T00:00:00Z", "until": "2026-11-28T00:00:00Z"}


def throttle_30_percent(seed: int) -> Callable[[int, str], bool]:
    chance = random.Random(seed)  # seeded: the same faults on every run
    return lambda number, operation: chance.random() < 0.3


def result_rows(count: int) -> list[list[Cell]]:
    """Distinct rows, with NULLs and cells that need CSV quoting, so a lost, doubled or mangled row shows."""
    rows: list[list[Cell]] = []
    for n in range(count):
        error = None if n % 7 else f'AccessDenied: "s3:GetObject", row {n}'
        moment = f"2026-11-20T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
        name = "GetObject" if n % 5 else "DeleteTrail"
        rows.append([moment, "s3.amazonaws.com", name, f"198.51.100.{n % 250}", error])
    return rows


def csv_bytes(columns: list[str], rows: list[list[Cell]]) -> bytes:
    # The evidence form (integrations.queries.csvstream), Athena's result CSV: every value quoted with
    # quotes doubled, NULL an empty unquoted field, LF.
    lines = (
        ",".join("" if v is None else '"' + v.replace('"', '""') + '"' for v in row) + "\n" for row in [columns, *rows]
    )
    return "".join(lines).encode()


@pytest.fixture
def eager() -> Iterator[None]:
    # The evidence hash check queued on commit runs inline, so nothing is left on the broker.
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def query_run(
    eager: None, incident: Incident, responder: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ActionRun:
    """A queued `query.run` on Athena; the task is run by the test (`apply`, its retries inline)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    # Bounded: a query that never finished would be stopped after this, not after the default 10 minutes.
    settings.WATCHPOST_QUERY_TIMEOUT_SECONDS = 60
    settings.WATCHPOST_QUERY_ENGINE = "athena"
    settings.WATCHPOST_ATHENA_REGION = "us-east-1"
    settings.WATCHPOST_ATHENA_OUTPUT_LOCATION = "s3://athena-results-123456789012/watchpost/"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return ActionRun.objects.create(
        incident=incident,
        action="query.run",
        params={"template": "source_ip_activity", "source_ip": "198.51.100.23", **WINDOW},
        requested_by=responder,
    )


def run_throttled(run: ActionRun, monkeypatch: pytest.MonkeyPatch) -> tuple[ActionRun, FakeAthena]:
    began = time.monotonic()
    with FakeAthena(COLUMNS, result_rows(N), fault=throttle_30_percent(SEED)) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", fake.url)
        action_run_task.apply(args=[run.pk])
    # Bounded in time: capped attempts with botocore's backoff (≤ 20 s each) and ≤ 5 task retries.
    assert time.monotonic() - began < 120
    run.refresh_from_db()
    return run, fake


def violations(run: ActionRun, fake: FakeAthena) -> list[str]:
    """What R5 forbids, each as a line: empty when all rows arrived, attempts stayed capped and one query ran."""
    found = []
    expected = csv_bytes(COLUMNS, result_rows(N))
    if run.status != ActionRun.Status.SUCCEEDED:
        found.append(f"lost: the run ended {run.status}: {run.error}")
    else:
        evidence = Evidence.objects.get(pk=run.result["evidence_id"])
        stored = Path(evidence.file.path).read_bytes()
        if run.result["rows"] != N or stored != expected or evidence.sha256 != hashlib.sha256(expected).hexdigest():
            found.append(f"lost: {run.result['rows']} rows in the evidence, {N} served")
    if attempts := [e.attempt for e in fake.log if e.attempt > CAP]:
        found.append(f"over the cap: attempts {attempts}")
    if run.attempts > 1 + action_run_task.max_retries:
        found.append(f"over the cap: {run.attempts} task runs")
    if len(fake.executions) > 1:  # none at all is a loss, reported above
        found.append(f"duplicate: {len(fake.executions)} query executions started")
    return found


def retried_after_the_start(fake: FakeAthena) -> bool:
    """Whether a call after a StartQueryExecution was accepted failed all its attempts (a task retry followed)."""
    accepted = next(i for i, e in enumerate(fake.log) if e.operation == "StartQueryExecution" and e.status == 200)
    later = fake.log[accepted + 1 :]
    return any(e.attempt == CAP and e.status == 400 for e in later)


def test_throttled_athena_calls_lose_no_row_and_start_one_query(
    query_run: ActionRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # when: the query runs behind an endpoint that throttles 30% of requests
    run, fake = run_throttled(query_run, monkeypatch)
    # then: every row arrived, in order, byte for byte; attempts stayed capped; one query was started
    assert violations(run, fake) == []
    # and: the faults were real and hit the start; botocore retried it with the same token
    throttled = [e for e in fake.log if e.status == 400]
    assert 0.15 < len(throttled) / len(fake.log) < 0.5, (len(throttled), len(fake.log))
    assert any(e.operation == "StartQueryExecution" for e in throttled)
    starts = fake.calls("StartQueryExecution")
    assert len(starts) >= 2 and len({e.body["ClientRequestToken"] for e in starts}) == 1
    assert CLIENT_CONFIG.retries["total_max_attempts"] == CAP and {e.max_attempts for e in fake.log} == {CAP}
    # and: a call after the start ran out of attempts, so the task retried with the query running:
    # it resumed that execution (the run's progress) instead of starting another
    assert retried_after_the_start(fake)
    assert 2 <= run.attempts <= 1 + action_run_task.max_retries
    assert len(fake.calls("StartQueryExecution", status=200)) == 1
    # and: the query moved QUEUED → RUNNING → SUCCEEDED, and its execution is in the evidence's provenance
    (execution,) = fake.executions.values()
    assert execution.polls >= 4 and run.result["execution_id"] == execution.execution_id
    assert Evidence.objects.get(pk=run.result["evidence_id"]).provenance["execution_id"] == execution.execution_id


def forget_the_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retried task that does not know the query already started: progress is dropped on requeue."""
    real = actions.action_run_requeue

    def requeue(*, run_id: int, error: str) -> None:
        real(run_id=run_id, error=error)
        ActionRun.objects.filter(pk=run_id).update(progress={})

    monkeypatch.setattr(actions, "action_run_requeue", requeue)


def test_the_client_request_token_alone_prevents_a_second_query(
    query_run: ActionRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the task retry starts the query again (no resume), with the run's own token
    forget_the_execution(monkeypatch)
    # when
    run, fake = run_throttled(query_run, monkeypatch)
    # then: the second StartQueryExecution reached Athena and got the first execution back
    assert violations(run, fake) == []
    accepted = fake.calls("StartQueryExecution", status=200)
    assert len(accepted) >= 2 and len({e.body["ClientRequestToken"] for e in accepted}) == 1


def test_control_without_retries_throttling_loses_the_result(
    query_run: ActionRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: one attempt per call in botocore (total_max_attempts; its `max_attempts` counts retries), and a
    # task that does not retry
    monkeypatch.setattr(session, "CLIENT_CONFIG", Config(retries={"mode": "standard", "total_max_attempts": 1}))
    monkeypatch.setattr(action_run_task, "max_retries", 0)
    # when
    run, fake = run_throttled(query_run, monkeypatch)
    # then: the first throttled call ends the run, and the result is lost
    found = violations(run, fake)
    assert found and all(line.startswith("lost: ") for line in found), found
    assert "ThrottlingException" in run.error and not Evidence.objects.exists()
    assert {e.attempt for e in fake.log} == {1} and run.attempts == 1


def test_control_a_fresh_token_per_attempt_starts_a_second_query(
    query_run: ActionRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the retried task starts again (no resume) and sends a new ClientRequestToken each time
    forget_the_execution(monkeypatch)
    monkeypatch.setattr(queries, "_token", lambda run, request: f"watchpost-{uuid.uuid4().hex}")
    # when
    run, fake = run_throttled(query_run, monkeypatch)
    # then: all rows still arrive, but Athena ran (and billed) the query twice
    assert violations(run, fake) == [f"duplicate: {len(fake.executions)} query executions started"]
    assert len(fake.executions) >= 2
