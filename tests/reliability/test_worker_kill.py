"""R1: a Celery worker SIGKILLed in the middle of 300 idempotent tasks loses none and applies each once.

The tasks are the application's own (`payload_process_task`: one stored GuardDuty payload → finding,
incident, checklist, timeline), consumed by a real prefork worker from a private Redis. Faults: SIGKILL
of the pool child that is running a task, then SIGKILL of the whole worker (main process and children),
then a fresh worker; once the broker is drained, the reconcile sweep (R3) re-enqueues any payload still
"received". The control run acknowledges early (Celery's default), without the sweep, and must lose
tasks: that proves the harness can see a loss.
"""

import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from incidents.models import Finding, InboundPayload, Incident, QuarantinedDocument, TimelineEvent
from incidents.services.reconcile import payloads_take_pending
from playbooks.checklists import checklist_materialise
from playbooks.models import ChecklistItem, PlaybookStep
from tests.reliability.conftest import payloads_store
from tests.reliability.procs import Worker, child_env, in_flight, publish, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

N = 300
TASK = "incidents.tasks.payload_process_task"
VISIBILITY = 3  # seconds; the harness restores unacknowledged messages after this
CONCURRENCY = 2  # pool children: the most tasks the whole-worker kill can interrupt


def accepted() -> int:
    return InboundPayload.objects.filter(status=InboundPayload.Status.ACCEPTED).count()


def _kill_a_busy_child(inflight: Path) -> set[int]:
    """SIGKILL a pool child that is inside a task (its marker names it); the payloads it was running.

    Read once it is dead: the child may finish the task it was marked for between our look and the
    signal, and have started the next one, so the markers it leaves behind are the truth.
    """
    assert wait_for(lambda: in_flight(inflight), timeout=20)
    pid = in_flight(inflight)[0][0]
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: _dead(pid), timeout=10), pid
    return _markers_clear(inflight, pid=pid)


def _dead(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet: either way it runs no more code."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def _markers_clear(inflight: Path, *, pid: int | None = None) -> set[int]:
    """Remove the markers dead children could not remove (all, or one pid's); their payload ids."""
    found = set()
    for marker_pid, payload_id in in_flight(inflight):
        if pid is None or marker_pid == pid:
            (inflight / f"{marker_pid}-{payload_id}").unlink()
            found.add(payload_id)
    return found


def _run(redis: Any, tmp_path: Path, *, early_ack: bool) -> dict[str, Any]:
    inflight = tmp_path / "inflight"
    inflight.mkdir()
    env = child_env(
        broker_url=redis.url,
        WP_REL_VISIBILITY=str(VISIBILITY),
        WP_REL_DELAY="0.06",
        WP_REL_INFLIGHT=str(inflight),
        **({"WP_REL_EARLY_ACK": "1"} if early_ack else {}),
    )
    # given: 300 stored payloads and one task each on the broker
    ids = payloads_store(N)
    publish(redis.url, TASK, [[payload_id] for payload_id in ids])
    worker = Worker(env, tmp_path / "worker.log", concurrency=CONCURRENCY)
    worker.start()
    try:
        # when: a pool child dies mid-task, then the whole worker, then a new worker takes over
        assert wait_for(lambda: accepted() >= 60, timeout=60), worker.log_tail()
        killed_in_child = _kill_a_busy_child(inflight)
        assert wait_for(lambda: accepted() >= 150, timeout=60), worker.log_tail()
        assert wait_for(lambda: in_flight(inflight), timeout=20), worker.log_tail()
        worker.kill()
        busy_at_kill = _markers_clear(inflight)  # read after the kill: what each child was inside
        worker.start()
        client = redis.client()

        def drained() -> bool:
            return client.llen("celery") == 0 and client.hlen("unacked") == 0 and not in_flight(inflight)

        # then (both runs): wait until the broker holds nothing and nothing runs, twice a visibility timeout apart
        assert wait_for(drained, timeout=120), worker.log_tail()
        wait_for(lambda: accepted() == N, timeout=2 * VISIBILITY + 2)
        assert wait_for(drained, timeout=60), worker.log_tail()
        broker_lost = _not_accepted()
        swept: list[int] = []
        if not early_ack:
            # and the reconcile sweep, as beat runs it (R3), re-enqueues what the broker itself lost
            swept = _sweep(redis.url)
            assert wait_for(lambda: accepted() == N, timeout=30), worker.log_tail()
            assert wait_for(drained, timeout=30), worker.log_tail()
    finally:
        worker.stop()
    return {
        "accepted": accepted(),
        "lost_by_broker": broker_lost,
        "swept": swept,
        "running_at_kills": killed_in_child | busy_at_kill,
        "findings": Finding.objects.count(),
        "incidents": Incident.objects.count(),
        "created_events": TimelineEvent.objects.filter(kind=TimelineEvent.Kind.CREATED).count(),
        "finding_events": TimelineEvent.objects.filter(kind=TimelineEvent.Kind.FINDING).count(),
        "quarantined": QuarantinedDocument.objects.count(),
        "checklist_items": _checklists_as_read(),
        "steps": PlaybookStep.objects.count(),
    }


def _sweep(broker_url: str) -> list[int]:
    """The reconcile sweep's payload half, its tasks published to this test's broker."""
    requeue, given_up = payloads_take_pending(older_than=timedelta(0), max_attempts=5)
    assert given_up == []
    publish(broker_url, TASK, [[payload_id] for payload_id in requeue])
    return requeue


def _not_accepted() -> dict[int, str]:
    return dict(InboundPayload.objects.exclude(status=InboundPayload.Status.ACCEPTED).values_list("pk", "status"))


def _checklists_as_read() -> int:
    """Checklist rows once every case has been read (ingestion leaves them to the first read)."""
    checklist_materialise(incident_ids=list(Incident.objects.values_list("pk", flat=True)))
    return ChecklistItem.objects.count()


def test_worker_killed_mid_run_loses_no_task_and_applies_each_once(redis_factory, playbook, tmp_path) -> None:
    redis = redis_factory(appendonly=False)
    result = _run(redis, tmp_path, early_ack=False)
    print("R1:", result)
    # then: every task ran to the end, and each side effect exists exactly once
    assert result["accepted"] == N, result
    # and the broker itself lost at most the one message a kill can catch in flight: kombu's Redis
    # transport pops a message (BRPOP) before it records it as unacknowledged, so a worker killed in
    # between, or before it read the reply, takes the message with it. The sweep found it, still
    # "received" in the database, and ran it.
    assert len(result["lost_by_broker"]) <= 1 and set(result["lost_by_broker"]) == set(result["swept"]), result
    assert result["findings"] == N and result["incidents"] == N, result
    assert result["created_events"] == N and result["finding_events"] == N, result
    assert result["quarantined"] == 0, result
    assert result["checklist_items"] == N * result["steps"], result  # one checklist per incident, not two


def test_control_early_ack_loses_the_tasks_that_were_running(redis_factory, playbook, tmp_path) -> None:
    redis = redis_factory(appendonly=False)
    result = _run(redis, tmp_path, early_ack=True)
    print("R1 control:", result, "lost:", N - result["accepted"])
    # then: the tasks running at each kill were acknowledged before they ran, and are gone for good
    lost = set(result["lost_by_broker"])
    assert lost, result
    # and no more than the kills could interrupt: one task in the killed child, one in each child of the
    # killed worker, and the one message the worker may have been receiving (see the test above).
    # Every other task still ran. (The markers cannot name each lost task: a child sends "accepted",
    # which early ack acknowledges on, a moment before the task body writes its marker, and a kill can
    # land in between. Nor is every interrupted task lost: a child killed before its worker read
    # "accepted" leaves the message unacknowledged, and the broker hands it out again.)
    assert len(lost) <= 1 + CONCURRENCY + 1, (lost, result)
