"""End to end through the real Celery worker: an API write → event on commit → delivery task →
signed POST to a receiver on loopback, retried after a 503."""

import os
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import Client

from config.celery import app
from integrations import signing
from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.services import api_token_create
from tests.factories import UserFactory
from tests.integrations.receiver import receiver

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

app.conf.task_default_queue = f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"


@pytest.fixture
def celery_worker(settings):
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker that `make test` configures")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


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
        assert _wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").exists())
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 2 and list(delivery.attempt_log.values_list("status_code", flat=True)) == [503, 200]
    last = hook.requests[-1]
    signing.verify(header=last.headers[signing.HEADER], body=last.body, secrets=[subscription.secret])
    assert b'"external_ref":"SEC-7"' in last.body
