"""A worker killed mid-remediation leaves a state the next run converges from (real Celery, real Redis).

The first worker is a separate process (`celery worker`) that is SIGKILLed while its second write is
in flight; the re-run is started the way production starts it: the sweep re-queues the run once its
claim is older than the hard time limit, and another worker claims and finishes it.
"""

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import app
from incidents.models import Incident
from incidents.services.rbac import rbac_remediation_propose
from integrations.kubernetes.sandbox.store import ApiError
from integrations.models import Cluster
from playbooks.actions import action_run_approve, action_run_request
from playbooks.models import ActionRun
from playbooks.tasks import action_run_task, action_runs_sweep_task
from tests.worker import running_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def roles(role_groups) -> None:  # type: ignore[no-untyped-def]
    """Transactional tests flush the migration-made role groups; recreate them."""


def _worker_process(media: Path) -> subprocess.Popen[bytes]:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "WATCHPOST_MEDIA_ROOT": str(media),
        "PYTHONUNBUFFERED": "1",
    }
    queue = app.conf.task_default_queue
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue, "-l", "WARNING"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("write_lands", [True, False], ids=["write-landed", "write-lost"])
def test_a_worker_killed_mid_apply_leaves_a_state_the_next_run_converges_from(
    sandbox,
    incident,
    responder,
    manager,
    tmp_path,
    write_lands,
) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker that `make test` configures")
    # given: an inspected upgraded cluster and an approved two-object remediation
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    box = sandbox("upgraded-pre-1.14")
    Incident.objects.filter(pk=incident.pk).update(cluster_name="payments-prod")
    Cluster.objects.create(name="payments-prod", via=Cluster.Via.KUBECONFIG, kubeconfig_path=str(box.kubeconfig))
    inspection = action_run_request(incident_id=incident.pk, action="rbac.inspect", actor=responder)
    action_run_task.apply(args=[inspection.pk])
    run = rbac_remediation_propose(incident_id=incident.pk, actor=responder, source_run_id=inspection.pk)
    # the second real write blocks until the test has killed the worker that sent it
    writes: list[str] = []
    reached, release = threading.Event(), threading.Event()

    def hold_second_write(verb: str, resource: str, name: str) -> None:
        writes.append(name)
        if len(writes) == 2:
            reached.set()
            release.wait(60)
            if not write_lands:
                raise ApiError(503, "ServiceUnavailable", "the request was cut off")

    box.store.before_write = hold_second_write
    worker = _worker_process(media)
    try:
        action_run_approve(run_id=run.pk, actor=manager)  # enqueued on commit, to the worker process
        assert reached.wait(90), "the worker never reached the second write"
        # when: the worker dies mid-apply
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        release.set()
        box.store.before_write = None
    run.refresh_from_db()
    assert run.status == ActionRun.Status.RUNNING and [o["target"] for o in run.progress["outcomes"]] == [
        "ClusterRoleBinding/system:basic-user"
    ]
    # then: once the claim is past the hard time limit, the sweep re-queues it and a worker converges
    stale = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)
    ActionRun.objects.filter(pk=run.pk).update(claimed_at=stale)
    with running_worker():
        assert action_runs_sweep_task.apply().get() == 1
        assert wait_for(
            lambda: (
                ActionRun.objects.get(pk=run.pk).status != ActionRun.Status.RUNNING
                and ActionRun.objects.get(pk=run.pk).attempts == 2
            ),
            timeout=60,
        )
    run.refresh_from_db()
    assert run.status == ActionRun.Status.SUCCEEDED, run.error
    assert [(o["target"], o["result"]) for o in run.result["outcomes"]] == [
        ("ClusterRoleBinding/system:basic-user", "already"),
        ("ClusterRoleBinding/system:discovery", "already" if write_lands else "applied"),
    ]
    for name in ("system:basic-user", "system:discovery"):
        assert box.subjects("clusterrolebindings", name) == ["Group/system:authenticated"]
    real_patches = [path for method, path in box.cluster.requests if method == "PATCH" and "dryRun" not in path]
    # the binding done before the crash is never written again; the other once more only if its write was lost
    assert sum(path.endswith("system%3Abasic-user") for path in real_patches) == 1
    assert sum(path.endswith("system%3Adiscovery") for path in real_patches) == (1 if write_lands else 2)
    assert run.result["evidence"]["snapshot"] == run.progress["snapshot_evidence"]  # stored once, reused
