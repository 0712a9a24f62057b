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

A payload whose processing keeps failing would come back every sweep: each re-enqueue is counted in
its `meta`, and past the cap it is quarantined with the reason instead (as SQS does after
WATCHPOST_SQS_MAX_RECEIVES), so an admin sees it and the sweep stops retrying it.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from incidents.models import InboundPayload, QuarantinedDocument
from incidents.services.findings import REJECTED
from playbooks.models import ActionRun

# One sweep re-enqueues at most this many of each kind; the next sweep takes the rest.
SWEEP_LIMIT = 5000
ATTEMPTS_KEY = "reconcile_attempts"


@dataclass(frozen=True)
class ReconcileReport:
    payload_ids: list[int]
    action_run_ids: list[int]
    payloads_given_up: list[int] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "payloads": len(self.payload_ids),
            "action_runs": len(self.action_run_ids),
            "payloads_quarantined": len(self.payloads_given_up),
        }


def payload_ids_pending(*, older_than: timedelta) -> list[int]:
    cutoff = timezone.now() - older_than
    pending = InboundPayload.objects.filter(status=InboundPayload.Status.RECEIVED, received_at__lt=cutoff)
    return list(pending.order_by("received_at", "pk").values_list("pk", flat=True)[:SWEEP_LIMIT])


def payloads_take_pending(*, older_than: timedelta, max_attempts: int) -> tuple[list[int], list[int]]:
    """(to re-enqueue, given up): pending payloads, each re-enqueue counted; past the cap, quarantined."""
    requeue, given_up = [], []
    for payload_id in payload_ids_pending(older_than=older_than):
        with transaction.atomic():
            payload = InboundPayload.objects.select_for_update().filter(pk=payload_id).first()
            if payload is None or payload.status != InboundPayload.Status.RECEIVED:
                continue  # processed meanwhile
            attempts = int((payload.meta or {}).get(ATTEMPTS_KEY, 0))
            if attempts >= max_attempts:
                reason = f"still unprocessed after {attempts} re-enqueues by the reconcile sweep; see the worker log"
                QuarantinedDocument.objects.create(payload=payload, position=None, document=None, reason=reason)
                InboundPayload.objects.filter(pk=payload_id).update(
                    status=InboundPayload.Status.REJECTED, counts={REJECTED: 1}, processed_at=timezone.now()
                )
                given_up.append(payload_id)
            else:
                InboundPayload.objects.filter(pk=payload_id).update(
                    meta={**(payload.meta or {}), ATTEMPTS_KEY: attempts + 1}
                )
                requeue.append(payload_id)
    return requeue, given_up


def action_run_ids_unclaimed(*, older_than: timedelta) -> list[int]:
    cutoff = timezone.now() - older_than
    unclaimed = ActionRun.objects.filter(status=ActionRun.Status.QUEUED, claimed_at__isnull=True, created_at__lt=cutoff)
    return list(unclaimed.order_by("created_at", "pk").values_list("pk", flat=True)[:SWEEP_LIMIT])


def pending_work_reconcile(*, older_than: timedelta, max_attempts: int = 5) -> ReconcileReport:
    """Enqueue one task per pending payload and per unclaimed action run; returns what was done."""
    from incidents.tasks import payload_process_task  # tasks import the services, not the other way
    from playbooks.tasks import action_run_task

    requeue, given_up = payloads_take_pending(older_than=older_than, max_attempts=max_attempts)
    report = ReconcileReport(
        payload_ids=requeue,
        action_run_ids=action_run_ids_unclaimed(older_than=older_than),
        payloads_given_up=given_up,
    )
    for payload_id in report.payload_ids:
        payload_process_task.delay(payload_id)
    for run_id in report.action_run_ids:
        action_run_task.delay(run_id)
    return report
