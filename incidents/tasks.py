"""Thin tasks: take an id, call a service."""

from celery import shared_task

from incidents.models import Evidence
from incidents.services import evidence_verify


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
