"""R3: Redis killed with tasks queued, and Redis wiped: every stored finding is still processed.

Two protections, each tested with the fault on, and each with a control that shows the loss:
- the broker's own durability: AOF (`appendonly yes`, `appendfsync everysec`, as docker-compose.yml
  runs Redis) keeps queued messages across a SIGKILL; without AOF they are gone;
- the database as the record of pending work: the reconcile sweep (beat → `pending_work_reconcile_task`)
  re-enqueues payloads still "received" and action runs still "queued", so even a wiped Redis loses
  nothing.
"""

import time
from pathlib import Path

import pytest
import yaml

from incidents.models import Finding, InboundPayload, Incident
from playbooks.models import ActionRun
from tests.reliability.conftest import payloads_store
from tests.reliability.procs import ROOT, Worker, child_env, publish, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

N = 200
TASK = "incidents.tasks.payload_process_task"
RECONCILE = "incidents.tasks.pending_work_reconcile_task"


def accepted() -> int:
    return InboundPayload.objects.filter(status=InboundPayload.Status.ACCEPTED).count()


def _worker(redis, tmp_path: Path) -> Worker:  # type: ignore[no-untyped-def]
    # Grace 0: the sweep may take rows this young (production waits WATCHPOST_RECONCILE_GRACE_SECONDS).
    worker = Worker(child_env(broker_url=redis.url, WATCHPOST_RECONCILE_GRACE_SECONDS="0"), tmp_path / "worker.log")
    worker.start()
    return worker


def _queue_then_kill_redis(redis, ids: list[int]) -> int:  # type: ignore[no-untyped-def]
    publish(redis.url, TASK, [[payload_id] for payload_id in ids])
    assert redis.client().llen("celery") == len(ids)
    time.sleep(1.5)  # appendfsync everysec: writes older than a second are on disk
    redis.kill()
    redis.start()
    return int(redis.client().llen("celery"))


def test_compose_runs_redis_with_aof() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command


def test_aof_keeps_queued_tasks_across_a_redis_kill(redis_factory, playbook, tmp_path) -> None:
    # given: 200 payloads queued on an AOF Redis, which is then SIGKILLed and restarted
    redis = redis_factory(appendonly=True)
    ids = payloads_store(N)
    survived = _queue_then_kill_redis(redis, ids)
    # when: a worker comes up
    worker = _worker(redis, tmp_path)
    try:
        done = wait_for(lambda: accepted() == N, timeout=90)
    finally:
        worker.stop()
    # then: nothing was lost, without any help from the reconcile sweep
    assert survived == N
    assert done, worker.log_tail()
    assert Finding.objects.count() == N and Incident.objects.count() == N


def test_control_without_aof_a_redis_kill_loses_the_queue_and_the_sweep_recovers_it(
    redis_factory, playbook, tmp_path
) -> None:
    # given: the same, on a Redis without AOF
    redis = redis_factory(appendonly=False)
    ids = payloads_store(N)
    survived = _queue_then_kill_redis(redis, ids)
    worker = _worker(redis, tmp_path)
    try:
        # then (control): the queue is gone and a running worker processes nothing
        assert survived == 0
        time.sleep(3)
        assert accepted() == 0
        # when: beat's reconcile sweep runs
        publish(redis.url, RECONCILE, [[]])
        done = wait_for(lambda: accepted() == N, timeout=90)
    finally:
        worker.stop()
    # then: every payload is processed, once
    assert done, worker.log_tail()
    assert Finding.objects.count() == N and Incident.objects.count() == N


def test_wiped_redis_loses_nothing_the_database_knows_about(redis_factory, playbook, incident, tmp_path) -> None:
    # given: payloads and an approved action run, queued; then the broker is wiped
    redis = redis_factory(appendonly=True)
    ids = payloads_store(50)
    run = ActionRun.objects.create(incident=incident, action="rbac.inspect", status=ActionRun.Status.QUEUED)
    publish(redis.url, TASK, [[payload_id] for payload_id in ids])
    publish(redis.url, "playbooks.tasks.action_run_task", [[run.pk]])
    redis.client().flushall()
    worker = _worker(redis, tmp_path)
    try:
        time.sleep(3)
        # then (control): without the sweep nothing moves
        assert accepted() == 0
        assert ActionRun.objects.get(pk=run.pk).status == ActionRun.Status.QUEUED
        # when
        publish(redis.url, RECONCILE, [[]])
        done = wait_for(lambda: accepted() == 50, timeout=60)
        final = (ActionRun.Status.SUCCEEDED, ActionRun.Status.FAILED)
        claimed = wait_for(lambda: ActionRun.objects.get(pk=run.pk).status in final, timeout=30)
    finally:
        worker.stop()
    # then: every payload processed, and the run taken by a worker (it ends in a final state)
    assert done and claimed, worker.log_tail()
    run.refresh_from_db()
    assert run.attempts == 1 and run.status in final
