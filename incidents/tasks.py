"""Thin tasks: take an id, call a service."""

from celery import shared_task

from incidents.services import evidence_verify


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=10)
def evidence_verify_task(self, evidence_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Re-read the stored evidence in the worker and record the hash check on the custody log."""
    return evidence_verify(evidence_id=evidence_id)
