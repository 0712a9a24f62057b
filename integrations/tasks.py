"""Thin tasks: take an id, call a service."""

from celery import shared_task

from integrations.webhooks import webhook_deliveries_requeue_due, webhook_delivery_attempt

# A countdown longer than the Redis visibility timeout (1 h) is delivered twice, and the backoff
# reaches 1 h × 1.2 jitter: countdowns stay under half of it (R6). A later attempt is left to the
# webhook-requeue sweep (beat, every 5 min), which sends deliveries whose next_attempt_at has passed.
MAX_COUNTDOWN_SECONDS = 900


@shared_task(acks_late=True, ignore_result=True)
def webhook_deliver_task(delivery_id: int) -> None:
    """One attempt; the next one, if any, is scheduled with the service's backoff."""
    delay = webhook_delivery_attempt(delivery_id=delivery_id)
    if delay is not None and delay <= MAX_COUNTDOWN_SECONDS:
        webhook_deliver_task.apply_async((delivery_id,), countdown=min(delay, MAX_COUNTDOWN_SECONDS))


@shared_task(acks_late=True, ignore_result=True)
def webhook_requeue_due_task() -> int:
    return webhook_deliveries_requeue_due()
