"""Thin tasks: take an id, call a service."""

from celery import shared_task

from integrations.webhooks import webhook_deliveries_requeue_due, webhook_delivery_attempt


@shared_task(acks_late=True, ignore_result=True)
def webhook_deliver_task(delivery_id: int) -> None:
    """One attempt; the next one, if any, is scheduled with the service's backoff."""
    delay = webhook_delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        webhook_deliver_task.apply_async((delivery_id,), countdown=delay)


@shared_task(acks_late=True, ignore_result=True)
def webhook_requeue_due_task() -> int:
    return webhook_deliveries_requeue_due()
