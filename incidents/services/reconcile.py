"""Reconcile: put back on the queue the work the database says is pending (R3).

The database is the record of what must happen; the broker only carries reminders. A reminder can
be lost: Redis restarted without persistence, wiped, or failed over to an empty replica; or a
process died between committing the row and publishing the task. So beat runs this sweep, which
re-enqueues from the database:

- inbound payloads still "received" (stored, never processed) some time after they arrived;
- action runs still "queued" and never claimed some time after they were requested.

Re-enqueueing is safe because the consumers converge when run twice: a payload that is no longer
"received" is skipped and findings ingest idempotently; an action run is claimed by a conditional
UPDATE, so a duplicate task finds nothing to claim. The grace period keeps the sweep from racing a
request or task that is still working on a fresh row.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from incidents.models import InboundPayload
from playbooks.models import ActionRun

# One sweep re-enqueues at most this many of each kind; the next sweep takes the rest.
SWEEP_LIMIT = 5000


@dataclass(frozen=True)
class ReconcileReport:
    payload_ids: list[int]
    action_run_ids: list[int]

    @property
    def counts(self) -> dict[str, int]:
        return {"payloads": len(self.payload_ids), "action_runs": len(self.action_run_ids)}


def payload_ids_pending(*, older_than: timedelta) -> list[int]:
    cutoff = timezone.now() - older_than
    pending = InboundPayload.objects.filter(status=InboundPayload.Status.RECEIVED, received_at__lt=cutoff)
    return list(pending.order_by("received_at", "pk").values_list("pk", flat=True)[:SWEEP_LIMIT])


def action_run_ids_unclaimed(*, older_than: timedelta) -> list[int]:
    cutoff = timezone.now() - older_than
    unclaimed = ActionRun.objects.filter(status=ActionRun.Status.QUEUED, claimed_at__isnull=True, created_at__lt=cutoff)
    return list(unclaimed.order_by("created_at", "pk").values_list("pk", flat=True)[:SWEEP_LIMIT])


def pending_work_reconcile(*, older_than: timedelta) -> ReconcileReport:
    """Enqueue one task per pending payload and per unclaimed action run; returns what was enqueued."""
    from incidents.tasks import payload_process_task  # tasks import the services, not the other way
    from playbooks.tasks import action_run_task

    report = ReconcileReport(
        payload_ids=payload_ids_pending(older_than=older_than),
        action_run_ids=action_run_ids_unclaimed(older_than=older_than),
    )
    for payload_id in report.payload_ids:
        payload_process_task.delay(payload_id)
    for run_id in report.action_run_ids:
        action_run_task.delay(run_id)
    return report
