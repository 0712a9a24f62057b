"""R10: a GuardDuty backfill whose worker is SIGKILLed half-way resumes from its cursor with no gap.

A real worker runs the real poll task against the loopback GuardDuty endpoint (500 findings, 10
pages). It is killed while a page is fetched but not committed; a new worker gets the task back
(acks_late + reject_on_worker_lost, short visibility timeout) and the poll resumes at the cursor,
which only ever moves after a page is committed. The control moves the cursor on fetch instead,
and must leave a gap.
"""

from pathlib import Path
from typing import Any

import pytest

from incidents.models import InboundPayload
from integrations.aws.guardduty_api import PAGE_SIZE
from integrations.models import AwsAccount, PollCursor
from tests.reliability.conftest import START_MS, finding_ids_stored, timed_findings
from tests.reliability.fake_guardduty import FakeGuardDuty
from tests.reliability.procs import Worker, child_env, in_flight, publish, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

N = 500
DETECTOR = "12abc34d567e8fa901bc2d34e56789f0"
LAST_MS = START_MS + (N - 1) * 1000


def _backfill_killed_half_way(redis: Any, tmp_path: Path, *, cursor_first: bool) -> dict[str, Any]:
    account = AwsAccount.objects.create(
        name="prod", account_id="111122223333", regions="us-east-1", detector_ids={"us-east-1": DETECTOR}
    )
    cursor = PollCursor.objects.create(account=account, region="us-east-1", detector_id=DETECTOR)
    findings = timed_findings(N)
    inflight = tmp_path / "inflight"
    inflight.mkdir()
    with FakeGuardDuty(findings) as fake:
        env = child_env(
            broker_url=redis.url,
            AWS_ENDPOINT_URL_GUARDDUTY=fake.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            WP_REL_VISIBILITY="3",
            WP_REL_PAGE_DELAY="0.5",
            WP_REL_INFLIGHT=str(inflight),
            **({"WP_REL_CURSOR_FIRST": "1"} if cursor_first else {}),
        )
        worker = Worker(env, tmp_path / "worker.log", concurrency=1)
        publish(redis.url, "incidents.tasks.guardduty_poll_task", [[cursor.pk]])
        worker.start()
        try:
            # when: three pages are in, and the fourth is fetched but not committed, the worker dies
            assert wait_for(lambda: len(finding_ids_stored()) >= 3 * PAGE_SIZE, timeout=60), worker.log_tail()
            assert wait_for(lambda: in_flight(inflight), timeout=20), worker.log_tail()
            worker.kill()
            for marker in inflight.iterdir():
                marker.unlink()
            committed_at_kill = finding_ids_stored()
            served_before = len(fake.served_ids())
            worker.start()
            # then: the task comes back and the poll runs to the end of the data
            finished = wait_for(
                lambda: (
                    PollCursor.objects.get(pk=cursor.pk).updated_at_ms == LAST_MS
                    and PollCursor.objects.get(pk=cursor.pk).last_run_at is not None
                    and not in_flight(inflight)
                ),
                timeout=90,
            )
            assert finished, worker.log_tail()
        finally:
            worker.stop()
        served = fake.served_ids()
    refetched = [i for i in served[served_before:] if i in set(served[:served_before])]
    return {
        "stored": finding_ids_stored(),
        "all": {f["id"] for f in findings},
        "committed_at_kill": committed_at_kill,
        "refetched_committed": [i for i in refetched if i in committed_at_kill],
        "unprocessed_payloads": InboundPayload.objects.filter(status=InboundPayload.Status.RECEIVED).count(),
    }


def test_killed_backfill_resumes_from_its_cursor_with_no_gap(redis_factory, playbook, tmp_path) -> None:
    result = _backfill_killed_half_way(redis_factory(appendonly=False), tmp_path, cursor_first=False)
    # then: every finding is stored, and at most one committed finding was fetched again (the cursor's own)
    assert result["stored"] == result["all"]
    assert 3 * PAGE_SIZE <= len(result["committed_at_kill"]) < N
    assert len(result["refetched_committed"]) <= 1, result["refetched_committed"]
    assert result["unprocessed_payloads"] == 0


def test_control_cursor_moved_on_fetch_leaves_a_gap(redis_factory, playbook, tmp_path) -> None:
    result = _backfill_killed_half_way(redis_factory(appendonly=False), tmp_path, cursor_first=True)
    # then: the page that was in flight at the kill is never read again
    missing = result["all"] - result["stored"]
    assert len(missing) >= PAGE_SIZE - 1, len(missing)
