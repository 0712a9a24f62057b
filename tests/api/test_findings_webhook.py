"""POST /api/v1/findings/: signed deliveries stored, ingested, answered per finding; everything else refused clearly."""

import json
import time

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from incidents.models import Finding, InboundPayload, Incident, QuarantinedDocument
from integrations import signing
from integrations.services import api_token_create
from tests.fixtures import load_guardduty

pytestmark = pytest.mark.django_db

SECRET = "s3cret-for-tests-0123456789"
URL = "/api/v1/findings/"
_FINDING = load_guardduty("wire/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")


@pytest.fixture(autouse=True)
def configured(settings, playbook) -> None:
    cache.clear()  # the replay guard remembers signatures in the cache
    settings.WATCHPOST_FINDINGS_WEBHOOK_SECRETS = [SECRET]
    settings.WATCHPOST_WEBHOOK_MAX_BYTES = 200_000


def _post(
    client: Client, body: bytes, *, secret: str = SECRET, timestamp: int | None = None, header: str | None = None
):
    signature = header if header is not None else signing.sign(secret=secret, body=body, timestamp=timestamp)
    return client.post(URL, data=body, content_type="application/json", HTTP_X_WATCHPOST_SIGNATURE=signature)


def _event() -> bytes:
    return json.dumps(load_guardduty("eventbridge/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")).encode()


def test_url_is_the_documented_one() -> None:
    assert reverse("api-findings") == URL


def test_signed_eventbridge_event_is_ingested_and_answered_202(client: Client) -> None:
    response = _post(client, _event())
    body = response.json()
    assert response.status_code == 202
    assert body["counts"]["created"] == 1
    assert body["results"][0]["status"] == "created" and body["results"][0]["incident"] == Incident.objects.get().pk
    payload = InboundPayload.objects.get(pk=body["payload"])
    assert bytes(payload.body) == _event() and payload.source == "webhook" and payload.status == "accepted"


def test_the_same_finding_again_with_a_fresh_signature_is_a_duplicate(client: Client) -> None:
    _post(client, _event())
    again = _post(client, _event(), timestamp=int(time.time()) + 1)
    assert again.status_code == 202 and again.json()["results"][0]["status"] == "duplicate"
    assert Finding.objects.count() == Incident.objects.count() == 1


def test_a_replayed_signature_is_refused(client: Client) -> None:
    header = signing.sign(secret=SECRET, body=_event())
    assert _post(client, _event(), header=header).status_code == 202
    replay = _post(client, _event(), header=header)
    assert replay.status_code == 409 and replay["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "case,kwargs",
    [
        ("wrong secret", {"secret": "not-the-secret"}),
        ("too old", {"timestamp": lambda: int(time.time()) - 301}),
        # Well past the window: the request reaches the check a moment after the header is made, which
        # brings a future timestamp closer (seen: +301 s accepted on a slow machine). The exact edges
        # are tested on the verifier itself, with a fixed clock.
        ("from the future", {"timestamp": lambda: int(time.time()) + 330}),
        ("no header", {"header": ""}),
        ("malformed header", {"header": "sha256=abc"}),
    ],
)
def test_unsigned_or_badly_signed_deliveries_get_401_and_store_nothing(client: Client, case: str, kwargs) -> None:
    kwargs = {key: value() if callable(value) else value for key, value in kwargs.items()}  # times at run time
    response = _post(client, _event(), **kwargs)
    assert response.status_code == 401, case
    assert response.json()["title"] == "Signature required" and response.json()["detail"]
    assert not InboundPayload.objects.exists() and not Finding.objects.exists()


def test_a_rotated_secret_is_accepted_during_the_overlap(client: Client, settings) -> None:
    settings.WATCHPOST_FINDINGS_WEBHOOK_SECRETS = ["new-secret-aaaaaaaaaaaa", SECRET]
    assert _post(client, _event(), secret="new-secret-aaaaaaaaaaaa").status_code == 202
    assert _post(client, _event(), secret=SECRET, timestamp=int(time.time()) + 2).status_code == 202


def test_a_session_cookie_does_not_authenticate_the_webhook(client: Client, manager) -> None:
    client.force_login(manager)
    response = client.post(URL, data=_event(), content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body,words",
    [
        (b"{not json", "invalid JSON"),
        (json.dumps({"Records": [{"eventName": "PutObject"}]}).encode(), "not a finding"),
        (json.dumps({"id": "x", "accountId": "111122223333", "type": "T"}).encode(), "missing region, updatedAt"),
        (b"[]", "no findings"),
        (b'{"id": "x", "severity": NaN}', "NaN is not a number JSON allows"),
        (json.dumps(dict(_FINDING, accountId="1234567890123")).encode(), "accountId: 13 characters long"),
    ],
)
def test_signed_but_unusable_bodies_are_kept_quarantined_and_answered_422(
    client: Client, body: bytes, words: str
) -> None:
    response = _post(client, body)
    problem = response.json()
    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    assert words in problem["detail"]
    payload = InboundPayload.objects.get(pk=problem["payload"])
    assert bytes(payload.body) == body and payload.status == "rejected"
    assert QuarantinedDocument.objects.filter(payload=payload, reason__contains=words).exists()


def test_a_list_with_one_bad_finding_ingests_the_rest(client: Client) -> None:
    good = load_guardduty("wire/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")
    bad = dict(good, id="", accountId="111122223333")
    response = _post(client, json.dumps([good, bad]).encode())
    body = response.json()
    assert response.status_code == 202
    assert [r["status"] for r in body["results"]] == ["created", "rejected"]
    assert "missing id" in body["results"][1]["reason"]
    assert InboundPayload.objects.get(pk=body["payload"]).status == "partial"


def test_an_oversized_body_gets_413_and_a_bounded_excerpt_in_quarantine(client: Client, settings) -> None:
    settings.WATCHPOST_WEBHOOK_MAX_BYTES = 1000
    body = json.dumps([load_guardduty("wire/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")] * 3).encode()
    response = _post(client, body)
    assert response.status_code == 413 and "1000-byte limit" in response.json()["detail"]
    payload = InboundPayload.objects.get(pk=response.json()["payload"])
    assert payload.status == "rejected" and len(bytes(payload.body)) <= 64 * 1024
    assert QuarantinedDocument.objects.filter(payload=payload, reason__contains="limit").exists()


def test_get_is_not_allowed(client: Client) -> None:
    assert client.get(URL).status_code == 405


def test_not_configured_means_every_delivery_is_refused(client: Client, settings) -> None:
    settings.WATCHPOST_FINDINGS_WEBHOOK_SECRETS = []
    response = _post(client, _event())
    assert response.status_code == 401 and "not configured" in response.json()["detail"]


# --- Bearer tokens with the findings:write scope ---------------------------------------------------------


def _bearer(client: Client, body: bytes, token: str):
    return client.post(URL, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_findings_write_token_can_deliver_without_a_signature(client: Client, responder) -> None:
    created = api_token_create(user=responder, name="eventbridge", scopes=["findings:write"])
    response = _bearer(client, _event(), created.plaintext)
    assert response.status_code == 202 and response.json()["results"][0]["status"] == "created"
    payload = InboundPayload.objects.get(pk=response.json()["payload"])
    assert payload.meta["token"] == f"wp_{created.token.key_id}"


def test_a_token_without_the_scope_gets_403_and_nothing_is_stored(client: Client, responder) -> None:
    created = api_token_create(user=responder, name="reader", scopes=["incidents:read"])
    response = _bearer(client, _event(), created.plaintext)
    assert response.status_code == 403 and "findings:write" in response.json()["detail"]
    assert not InboundPayload.objects.exists()


def test_an_invalid_token_gets_401(client: Client) -> None:
    response = _bearer(client, _event(), "wp_AAAAAAAA_" + "x" * 43)
    assert response.status_code == 401 and response.json()["detail"] == "invalid token"
