"""Thin tasks: take an id, call a service."""

from celery import shared_task
from django.conf import settings

from incidents.models import Evidence
from incidents.services import evidence_verify
from incidents.services.ingest_sources import (
    guardduty_poll,
    poll_cursor_ids_enabled,
    poll_cursors_ensure,
    sqs_consume,
)
from incidents.services.sla import sla_breaches_sweep
from integrations.errors import TransientIntegrationError


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=10)
def evidence_verify_task(self, evidence_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Re-read the stored evidence in the worker and record the hash check on the custody log."""
    return evidence_verify(evidence_id=evidence_id)


@shared_task(acks_late=True)
def evidence_reverify_all_task() -> int:
    """Periodic sweep (beat): one verification task per piece of evidence."""
    ids = list(Evidence.objects.values_list("pk", flat=True).iterator(chunk_size=2000))
    for evidence_id in ids:
        evidence_verify_task.delay(evidence_id)
    return len(ids)


@shared_task(acks_late=True)
def sla_breach_sweep_task() -> int:
    """Periodic (beat): notify every acknowledgement deadline missed and not notified yet."""
    return sla_breaches_sweep()


# Ingestion from AWS. Throttling, 5xx and connection errors are retried here, with exponential backoff
# (jittered, capped at 5 minutes, at most 5 times); anything else fails the run and beat tries again.
# acks_late + reject_on_worker_lost: a worker killed mid-run gives the task back to the broker, and
# the services make a second run converge (SQS deletes after commit, the cursor moves after commit).
AWS_RETRY = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (TransientIntegrationError,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(bind=True, **AWS_RETRY)
def sqs_consume_task(self, queue_url: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Drain the EventBridge queue for up to WATCHPOST_SQS_CONSUME_SECONDS (beat starts one per interval)."""
    return sqs_consume(queue_url=queue_url, budget_seconds=settings.WATCHPOST_SQS_CONSUME_SECONDS)


@shared_task(bind=True, **AWS_RETRY)
def guardduty_poll_task(self, cursor_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Read one detector's findings updated since its cursor."""
    return guardduty_poll(cursor_id=cursor_id)


@shared_task(acks_late=True)
def guardduty_poll_all_task() -> int:
    """Periodic (beat): discover new detectors, then one poll task per enabled cursor."""
    poll_cursors_ensure()
    ids = poll_cursor_ids_enabled()
    for cursor_id in ids:
        guardduty_poll_task.delay(cursor_id)
    return len(ids)
