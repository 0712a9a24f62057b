"""query.run across the process boundary: enqueued on commit, run by a real Celery worker on Redis."""

from collections.abc import Callable

import pytest

from incidents.models import CustodyEvent, Evidence
from playbooks import actions
from playbooks.models import ActionRun
from tests.integrations.query_helpers import BUNDLED
from tests.worker import running_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def roles(role_groups) -> None:
    """Transactional tests flush the migration-made role groups; recreate them."""


@pytest.fixture
def celery_worker(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.WATCHPOST_QUERY_ENGINE = "duckdb"
    settings.WATCHPOST_CLOUDTRAIL_DIR = BUNDLED
    with running_worker():
        yield


def _finished(run_id: int) -> Callable[[], bool]:
    return lambda: ActionRun.objects.filter(pk=run_id, finished_at__isnull=False).exists()


def test_the_worker_runs_the_query_and_its_rerun(celery_worker, incident, responder) -> None:
    # when: the request commits, which enqueues the run
    params = {"template": "sensitive_actions_after", "principal_id": "AROAQXAMPLENODEROLE01"}
    params |= {"since": "2026-11-18T00:00:00Z", "until": "2026-11-28T00:00:00Z"}
    run = actions.action_run_request(incident_id=incident.pk, action="query.run", actor=responder, params=params)
    assert wait_for(_finished(run.pk), timeout=30)
    run.refresh_from_db()
    # then
    assert run.status == ActionRun.Status.SUCCEEDED, run.error
    assert run.result["rows"] == 6 and run.result["flagged"] == 6 and run.attempts == 1
    evidence = Evidence.objects.get(pk=run.result["evidence_id"])
    assert evidence.provenance["run"] == run.pk and evidence.sha256 == run.result["sha256"]
    # and the re-run, also through the worker, reproduces the hash
    rerun = actions.action_run_request(
        incident_id=incident.pk, action="query.run", actor=responder, params={}, parent_id=run.pk
    )
    assert wait_for(_finished(rerun.pk), timeout=30)
    rerun.refresh_from_db()
    assert rerun.status == ActionRun.Status.SUCCEEDED and rerun.result["verification"]["match"] is True
    assert evidence.custody.filter(action=CustodyEvent.Action.VERIFIED, detail__contains=f"#{rerun.pk}").exists()
