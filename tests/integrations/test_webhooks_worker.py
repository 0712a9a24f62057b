"""End to end through the real Celery worker: an API write → event on commit → delivery task →
signed POST to a receiver on loopback, retried after a 503."""

import pytest
from django.test import Client

from integrations import signing
from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.services import api_token_create
from tests.factories import UserFactory
from tests.integrations.receiver import receiver
from tests.worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_incident_created_by_the_api_is_delivered_signed_after_a_retry(
    celery_worker, role_groups, playbook, settings
) -> None:
    # given: a receiver that fails once, subscribed to incident.created
    settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.WATCHPOST_WEBHOOK_BACKOFF_SECONDS = 0.2
    token = api_token_create(user=UserFactory(role="responder"), name="jira", scopes=["incidents:write"]).plaintext
    with receiver([503, 200]) as hook:
        subscription = WebhookSubscription.objects.create(name="jira", url=hook.url, event_types=["incident.created"])
        # when: Jira creates an incident through the API
        response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
            "/api/v1/incidents/",
            {"title": "From Jira", "severity": "high", "source": "jira", "external_ref": "SEC-7"},
            content_type="application/json",
        )
        assert response.status_code == 201
        # then: the worker delivers it, the second attempt succeeding
        assert wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 2 and list(delivery.attempt_log.values_list("status_code", flat=True)) == [503, 200]
    last = hook.requests[-1]
    signing.verify(header=last.headers[signing.HEADER], body=last.body, secrets=[subscription.secret])
    assert b'"external_ref":"SEC-7"' in last.body
