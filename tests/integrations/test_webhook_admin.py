"""The delivery log in the admin: a subscription's page lists its deliveries; Replay queues a dead one again."""

import pytest
from django.urls import reverse

from integrations.models import WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead(db) -> WebhookDelivery:
    subscription = WebhookSubscription.objects.create(
        name="jira", url="https://jira.example.com/hook", event_types=["incident.created"]
    )
    return WebhookDelivery.objects.create(
        uuid="00000000-0000-4000-8000-000000000002",
        subscription=subscription,
        event_type="incident.created",
        body="{}",
        status=WebhookDelivery.Status.DEAD,
        attempts=8,
    )


def test_subscription_page_shows_its_delivery_log(client, superuser, dead) -> None:
    other = WebhookSubscription.objects.create(name="pager", url="https://p.example.com/", event_types=["note.added"])
    WebhookDelivery.objects.create(
        uuid="00000000-0000-4000-8000-000000000009", subscription=other, event_type="note.added", body="{}",
        last_error="an error of the other subscription",
    )  # fmt: skip
    client.force_login(superuser)
    page = client.get(reverse("admin:integrations_webhooksubscription_change", args=[dead.subscription_id]))
    assert page.status_code == 200 and b"Dead letter" in page.content and b"all deliveries" in page.content
    assert b"an error of the other subscription" not in page.content


def test_replay_button_requeues_a_dead_delivery(client, superuser, dead, django_capture_on_commit_callbacks) -> None:
    client.force_login(superuser)
    page = client.get(reverse("admin:integrations_webhookdelivery_change", args=[dead.pk]))
    replay_url = reverse("admin:integrations_webhookdelivery_replay", args=[dead.pk])
    assert replay_url.encode() in page.content
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        response = client.post(replay_url)
    dead.refresh_from_db()
    assert response.status_code == 302 and dead.status == WebhookDelivery.Status.PENDING and dead.attempts == 0
    assert len(enqueued) == 1  # the delivery task, sent once the change commits


def test_replay_is_post_only(client, superuser, dead) -> None:
    client.force_login(superuser)
    assert client.get(reverse("admin:integrations_webhookdelivery_replay", args=[dead.pk])).status_code == 405
    dead.refresh_from_db()
    assert dead.status == WebhookDelivery.Status.DEAD


def test_subscription_to_an_internal_address_is_refused_in_the_admin(client, superuser, settings) -> None:
    settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS = []
    client.force_login(superuser)
    response = client.post(
        reverse("admin:integrations_webhooksubscription_add"),
        {"name": "meta", "url": "http://169.254.169.254/latest/meta-data/", "event_types": ["incident.created"],
         "active": "on"},
    )  # fmt: skip
    assert response.status_code == 200 and b"internal address" in response.content
    assert not WebhookSubscription.objects.exists()
