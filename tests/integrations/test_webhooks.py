"""Outbound webhooks against a real receiver on loopback: signatures, retries, dead letter, replay, SSRF."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.services import incident_open, note_add
from integrations import signing, webhooks
from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.ticketing import ssrf
from integrations.ticketing.signing import DELIVERY_HEADER, EVENT_HEADER
from tests.integrations.receiver import receiver

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.WATCHPOST_WEBHOOK_MAX_ATTEMPTS = 3
    settings.WATCHPOST_WEBHOOK_BACKOFF_SECONDS = 0.01
    settings.WATCHPOST_WEBHOOK_TIMEOUT_SECONDS = 2


def _delivery(url: str, *, event: str = "incident.created", data: dict | None = None) -> WebhookDelivery:
    subscription = WebhookSubscription.objects.create(name=f"jira {url}", url=url, event_types=[event])
    body = json.dumps({"id": "d1", "type": event, "data": data or {"incident": {"id": 1}}})
    return WebhookDelivery.objects.create(
        uuid="00000000-0000-4000-8000-000000000001", subscription=subscription, event_type=event, body=body
    )


def _attempt_until_done(delivery: WebhookDelivery) -> WebhookDelivery:
    while webhooks.webhook_delivery_attempt(delivery_id=delivery.pk) is not None:
        time.sleep(0.02)
    delivery.refresh_from_db()
    return delivery


def test_delivery_is_signed_over_timestamp_and_body_and_verifies() -> None:
    with receiver([200]) as hook:
        delivery = _attempt_until_done(_delivery(hook.url))
    got = hook.requests[0]
    assert delivery.status == Status.DELIVERED and delivery.attempts == 1
    assert got.body == delivery.body.encode() and got.headers[EVENT_HEADER] == "incident.created"
    assert got.headers[DELIVERY_HEADER] == str(delivery.uuid)
    signing.verify(header=got.headers[signing.HEADER], body=got.body, secrets=[delivery.subscription.secret])


def test_tampered_body_old_timestamp_and_wrong_secret_fail_verification() -> None:
    with receiver([200]) as hook:
        delivery = _attempt_until_done(_delivery(hook.url))
    got, secret = hook.requests[0], delivery.subscription.secret
    header = got.headers[signing.HEADER]
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(header=header, body=got.body.replace(b"incident", b"incidenT"), secrets=[secret])
    with pytest.raises(signing.SignatureError, match="window"):
        signing.verify(header=header, body=got.body, secrets=[secret], now=time.time() + 301)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(header=header, body=got.body, secrets=["not-the-secret"])


def test_rotated_secret_signs_with_both_during_the_overlap_then_only_the_new(settings) -> None:
    with receiver([200]) as hook:
        delivery = _delivery(hook.url)
        old = delivery.subscription.secret
        new = webhooks.webhook_secret_rotate(subscription_id=delivery.subscription_id)
        _attempt_until_done(delivery)
        # after the overlap: the old secret no longer signs
        WebhookSubscription.objects.update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
        webhooks.webhook_delivery_replay(delivery_id=delivery.pk)
        _attempt_until_done(delivery)
    during, after = hook.requests
    for secret in (old, new):
        signing.verify(header=during.headers[signing.HEADER], body=during.body, secrets=[secret])
    signing.verify(header=after.headers[signing.HEADER], body=after.body, secrets=[new])
    with pytest.raises(signing.SignatureError):
        signing.verify(header=after.headers[signing.HEADER], body=after.body, secrets=[old])


def test_5xx_is_retried_with_backoff_until_delivered() -> None:
    with receiver([503, 500, 200]) as hook:
        delivery = _attempt_until_done(_delivery(hook.url))
    assert delivery.status == Status.DELIVERED and delivery.attempts == 3 and len(hook.requests) == 3
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [503, 500, 200]


def test_4xx_is_not_retried() -> None:
    with receiver([400, 200]) as hook:
        delivery = _attempt_until_done(_delivery(hook.url))
    assert delivery.status == Status.REJECTED and delivery.attempts == 1 and len(hook.requests) == 1
    assert delivery.last_status_code == 400


def test_attempts_exhausted_go_to_the_dead_letter_and_replay_delivers() -> None:
    with receiver([503, 503, 503, 200]) as hook:
        delivery = _attempt_until_done(_delivery(hook.url))
        assert delivery.status == Status.DEAD and delivery.attempts == 3
        # when: an admin replays it once the receiver is healthy
        assert webhooks.webhook_delivery_replay(delivery_id=delivery.pk)
        delivery = _attempt_until_done(delivery)
    assert delivery.status == Status.DELIVERED and delivery.attempt_log.count() == 4
    assert [a.number for a in delivery.attempt_log.all()] == [1, 2, 3, 4]


def test_connection_refused_counts_as_transient() -> None:
    with receiver([200]) as hook:
        url = hook.url  # the port is closed once the receiver stops
    delivery = _delivery(url)
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk) is not None
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING and delivery.attempt_log.get().status_code is None


def test_a_pending_delivery_is_attempted_by_one_claimant_at_a_time() -> None:
    delivery = _delivery("http://127.0.0.1:9/")
    assert webhooks._claim(delivery.pk) and not webhooks._claim(delivery.pk)


def test_services_emit_events_on_commit_only(django_capture_on_commit_callbacks, playbook, responder) -> None:
    # given: a subscription to two event types
    WebhookSubscription.objects.create(name="jira", url="https://jira.example.com/hook", event_types=["note.added"])
    with django_capture_on_commit_callbacks() as emitted:
        incident = incident_open(title="Case", playbook=playbook, actor=responder, source="jira", external_ref="S-1")
        note_add(incident_id=incident.pk, actor=responder, body="first look")
    # then: nothing exists before commit; on commit, one delivery for the subscribed type only
    assert WebhookDelivery.objects.count() == 0
    with django_capture_on_commit_callbacks():  # the enqueue callbacks are not run: no broker needed
        for callback in emitted:
            callback()
    delivery = WebhookDelivery.objects.get()
    body = json.loads(delivery.body)
    assert delivery.event_type == body["type"] == "note.added" and body["id"] == str(delivery.uuid)
    assert body["data"]["incident"]["external_ref"] == "S-1" and body["data"]["note"]["body"] == "first look"
    assert body["data"]["actor"] == "responder"


# --- SSRF guard --------------------------------------------------------------------------------------

ANSWERS = {
    "public.example": ["93.184.215.14"],
    "loopback.example": ["127.0.0.1"],
    "private.example": ["10.1.2.3"],
    "mixed.example": ["93.184.215.14", "192.168.1.5"],
    "metadata.example": ["169.254.169.254"],
    "ipv6meta.example": ["fd00:ec2::254"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "shared.example": ["100.100.100.200"],
    "onprem.example": ["10.20.30.40"],
}


def stub_resolver(host: str, port: int) -> list[str]:
    return ANSWERS[host]


@pytest.mark.parametrize(
    "host", ["loopback.example", "private.example", "mixed.example", "metadata.example", "ipv6meta.example",
             "mapped.example", "shared.example"],
)  # fmt: skip
def test_internal_destinations_are_refused(host: str) -> None:
    with pytest.raises(ssrf.DestinationRefusedError, match="internal address"):
        ssrf.destination_check(f"https://{host}/hook", allowed_networks=[], resolver=stub_resolver)


def test_public_destination_is_approved_with_its_address() -> None:
    destination = ssrf.destination_check("https://public.example/rest?x=1", allowed_networks=[], resolver=stub_resolver)
    assert (destination.address, destination.port, destination.target) == ("93.184.215.14", 443, "/rest?x=1")


def test_allow_list_admits_an_on_premises_network_but_never_metadata() -> None:
    allowed = ["10.20.0.0/16", "169.254.0.0/16"]
    assert ssrf.destination_check("http://onprem.example/", allowed_networks=allowed, resolver=stub_resolver)
    with pytest.raises(ssrf.DestinationRefusedError):
        ssrf.destination_check("http://metadata.example/", allowed_networks=allowed, resolver=stub_resolver)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "http://user:pw@public.example/", "http:///x"])
def test_other_schemes_credentials_and_hostless_urls_are_refused(url: str) -> None:
    with pytest.raises(ssrf.DestinationRefusedError):
        ssrf.destination_check(url, allowed_networks=[], resolver=stub_resolver)


def test_no_traffic_reaches_a_private_address_without_the_allow_list(settings, monkeypatch) -> None:
    # given: a name that resolves to loopback, where a receiver is listening
    settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS = []
    with receiver([200]) as hook:
        monkeypatch.setattr(webhooks, "resolver", lambda host, port: ["127.0.0.1"])
        delivery = _attempt_until_done(_delivery(f"http://tickets.example:{hook.port}/hook"))
    # then: refused before connecting, not retried, and the receiver saw nothing
    assert delivery.status == Status.REJECTED and "internal address" in delivery.last_error
    assert hook.requests == []


def test_an_incident_opened_by_ingestion_is_announced(django_capture_on_commit_callbacks, playbook) -> None:
    # given: a subscription to incident.created, and a GuardDuty finding arriving
    from incidents.models import InboundPayload
    from incidents.services.findings import payload_process, payload_store
    from tests.fixtures import load_guardduty

    WebhookSubscription.objects.create(name="jira", url="https://jira.example.com/h", event_types=["incident.created"])
    body = json.dumps(load_guardduty("eventbridge/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")).encode()
    with django_capture_on_commit_callbacks() as emitted:
        payload_process(payload_id=payload_store(source=InboundPayload.Source.WEBHOOK, body=body, meta={}).pk)
    # when: the ingest transaction's callbacks run (not the enqueue: no broker here)
    with django_capture_on_commit_callbacks():
        for callback in emitted:
            callback()
    # then
    event = json.loads(WebhookDelivery.objects.get().body)
    assert event["type"] == "incident.created" and event["data"]["incident"]["source"] == "guardduty"
    assert event["data"]["actor"] is None


def test_updated_event_names_severity_like_the_api(django_capture_on_commit_callbacks, incident, responder) -> None:
    from incidents.services import incident_update

    WebhookSubscription.objects.create(name="jira", url="https://jira.example.com/h", event_types=["incident.updated"])
    with django_capture_on_commit_callbacks() as emitted:
        incident_update(incident_id=incident.pk, actor=responder, severity=4)
    with django_capture_on_commit_callbacks():
        for callback in emitted:
            callback()
    body = json.loads(WebhookDelivery.objects.get().body)
    assert body["data"]["changes"]["severity"] == {"from": "medium", "to": "critical"}
    assert body["data"]["incident"]["severity"] == "critical"


@pytest.mark.parametrize("skew,accepted", [(-300, True), (300, True), (-301, False), (301, False)])
def test_the_window_edges_on_a_fixed_clock(skew: int, accepted: bool) -> None:
    # given: a header signed at a fixed moment, checked `skew` seconds away from it
    signed_at, body = 1_800_000_000, b'{"id": "d1"}'
    header = signing.sign(secret="s" * 24, body=body, timestamp=signed_at)

    # when / then
    if accepted:
        assert signing.verify(header=header, body=body, secrets=["s" * 24], now=signed_at + skew).timestamp == signed_at
    else:
        with pytest.raises(signing.SignatureError, match="window"):
            signing.verify(header=header, body=body, secrets=["s" * 24], now=signed_at + skew)
