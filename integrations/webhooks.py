"""Outbound webhook deliveries: fan an event out to subscriptions, attempt one delivery, replay.

A delivery row is written before anything is sent (Saleor's EventDelivery shape) and every attempt
gets its own row. Network errors, timeouts and 5xx retry with exponential backoff; a 4xx is final
(REJECTED); after WATCHPOST_WEBHOOK_MAX_ATTEMPTS the delivery is a dead letter (DEAD). Both can be
replayed from the admin.
"""

import json
import logging
import random
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from integrations.models import WebhookAttempt, WebhookDelivery, WebhookSubscription, webhook_secret_new
from integrations.ticketing import ssrf, transport
from integrations.ticketing.signing import delivery_headers

log = logging.getLogger("watchpost.webhooks")
Status = WebhookDelivery.Status
MAX_BACKOFF_SECONDS = 3600.0
# Resolver used for every delivery; tests swap in a stub (no traffic to private ranges).
resolver: ssrf.Resolver = ssrf.system_resolver


# The event types some active subscription wants, per process for a few seconds: a change nobody
# subscribed to then costs no query and no on-commit callback (ingestion opens incidents in bulk).
# Saving or deleting a subscription clears it in that process; other processes see it within the TTL.
SUBSCRIBED_TTL_SECONDS = 10.0
_subscribed: tuple[float, frozenset[str]] | None = None


def subscribed_event_types() -> frozenset[str]:
    global _subscribed
    moment = time.monotonic()
    if _subscribed is None or moment - _subscribed[0] > SUBSCRIBED_TTL_SECONDS:
        rows = WebhookSubscription.objects.filter(active=True).values_list("event_types", flat=True)
        _subscribed = (moment, frozenset(event for types in rows for event in types))
    return _subscribed[1]


@receiver([post_save, post_delete], sender=WebhookSubscription)
def subscribed_event_types_forget(**kwargs: Any) -> None:
    """Cache invalidation only (no business logic): the next event re-reads the subscriptions."""
    global _subscribed
    _subscribed = None


def webhook_event_emit(*, event_type: str, data: dict[str, Any]) -> list[int]:
    """One delivery per active subscription to `event_type`, enqueued once the rows are committed.

    Called from `transaction.on_commit` by the services, so an event is only sent for a change
    that really happened.
    """
    subscriptions = [
        s
        for s in WebhookSubscription.objects.filter(active=True).only("pk", "event_types")
        if event_type in s.event_types
    ]
    if not subscriptions:
        return []
    occurred_at = timezone.now()
    deliveries = []
    for subscription in subscriptions:
        delivery_id = uuid.uuid4()
        body = {"id": str(delivery_id), "type": event_type, "occurred_at": occurred_at, "data": data}
        deliveries.append(
            WebhookDelivery(
                uuid=delivery_id,
                subscription=subscription,
                event_type=event_type,
                body=json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":")),
                next_attempt_at=occurred_at,
            )
        )
    with transaction.atomic():
        created = WebhookDelivery.objects.bulk_create(deliveries)
        ids = [d.pk for d in created]
        transaction.on_commit(lambda: _enqueue(ids))
    return ids


def _enqueue(ids: list[int]) -> None:
    from integrations.tasks import webhook_deliver_task

    for delivery_id in ids:
        webhook_deliver_task.delay(delivery_id)


def signing_secrets(subscription: WebhookSubscription) -> list[str]:
    """The current secret, and the previous one while the rotation overlap lasts."""
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret and expires is not None and expires > timezone.now():
        return [subscription.secret, subscription.previous_secret]
    return [subscription.secret]


@transaction.atomic
def webhook_secret_rotate(*, subscription_id: int) -> str:
    """A new secret; the old one keeps signing (a second v1) for the overlap period. Returns the new one."""
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
    subscription.previous_secret = subscription.secret
    overlap = timedelta(hours=settings.WATCHPOST_WEBHOOK_ROTATION_OVERLAP_HOURS)
    subscription.previous_secret_expires_at = timezone.now() + overlap
    subscription.secret = webhook_secret_new()
    subscription.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return subscription.secret


def _claim(delivery_id: int) -> bool:
    """Take the delivery for one attempt; False when it is not due, done, or another worker holds it."""
    now = timezone.now()
    lease = timedelta(seconds=settings.WATCHPOST_WEBHOOK_TIMEOUT_SECONDS * 2 + 30)
    claimed = WebhookDelivery.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1)),
        pk=delivery_id,
        status=Status.PENDING,
    ).update(claimed_until=now + lease)
    return claimed == 1


def backoff_seconds(attempt: int) -> float:
    """Exponential from the configured base, capped, with ±20 % jitter so retries do not bunch up."""
    base = settings.WATCHPOST_WEBHOOK_BACKOFF_SECONDS * (2 ** (attempt - 1))
    return min(base, MAX_BACKOFF_SECONDS) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def webhook_delivery_attempt(*, delivery_id: int) -> float | None:
    """Make one attempt. Returns the delay before the next one, or None when there is none to make."""
    if not _claim(delivery_id):
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    subscription = delivery.subscription
    number = delivery.attempt_log.count() + 1
    result: transport.HttpResult | None = None
    error = ""
    try:
        if not subscription.active:
            raise PermanentIntegrationError("the subscription is inactive")
        destination = ssrf.destination_check(
            subscription.url, allowed_networks=settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS, resolver=resolver
        )
        body = delivery.body.encode()
        headers = delivery_headers(
            body=body,
            secrets=signing_secrets(subscription),
            event_type=delivery.event_type,
            delivery_id=str(delivery.uuid),
        )
        result = transport.post(
            destination=destination,
            body=body,
            headers=headers,
            timeout=settings.WATCHPOST_WEBHOOK_TIMEOUT_SECONDS,
            ca_bundle=settings.WATCHPOST_WEBHOOK_CA_BUNDLE,
        )
        outcome, delay = Status.DELIVERED, None
    except TransientIntegrationError as exc:
        result, error = getattr(exc, "result", None), str(exc)
        exhausted = delivery.attempts + 1 >= settings.WATCHPOST_WEBHOOK_MAX_ATTEMPTS
        outcome, delay = (Status.DEAD, None) if exhausted else (Status.PENDING, backoff_seconds(delivery.attempts + 1))
    except PermanentIntegrationError as exc:
        result, error = getattr(exc, "result", None), str(exc)
        outcome, delay = Status.REJECTED, None
    _record(delivery, number=number, result=result, error=error, outcome=outcome, delay=delay)
    return delay


def _record(
    delivery: WebhookDelivery,
    *,
    number: int,
    result: transport.HttpResult | None,
    error: str,
    outcome: str,
    delay: float | None,
) -> None:
    now = timezone.now()
    status_code = result.status if result else None
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            status_code=status_code,
            error=error[:2000],
            response_excerpt=(result.excerpt if result else "")[:500],
            duration_ms=result.elapsed_ms if result else 0,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=outcome,
            attempts=delivery.attempts + 1,
            last_status_code=status_code,
            last_error=error[:2000],
            claimed_until=None,
            next_attempt_at=now + timedelta(seconds=delay) if delay is not None else None,
            delivered_at=now if outcome == Status.DELIVERED else None,
        )
    if outcome != Status.DELIVERED:
        log.warning("webhook delivery %s attempt %s: %s (%s)", delivery.uuid, number, error, outcome)


def webhook_delivery_replay(*, delivery_id: int) -> bool:
    """Send a rejected or dead delivery again, with a fresh attempt budget; False if it is not replayable."""
    replayable = [Status.REJECTED, Status.DEAD, Status.DELIVERED]
    with transaction.atomic():
        changed = WebhookDelivery.objects.filter(pk=delivery_id, status__in=replayable).update(
            status=Status.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_until=None, delivered_at=None
        )
        if changed:
            transaction.on_commit(lambda: _enqueue([delivery_id]))
    return changed == 1


def webhook_deliveries_requeue_due(*, grace: timedelta = timedelta(minutes=5)) -> int:
    """Sweep: pending deliveries whose attempt is overdue (a lost task, a broker restart) go back on the queue."""
    due = list(
        WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lt=timezone.now() - grace)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now()))
        .values_list("pk", flat=True)[:1000]
    )
    _enqueue(due)
    return len(due)
