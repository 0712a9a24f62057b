"""How the API authenticates: Bearer tokens only for clients, session + CSRF only for the browser."""

import pytest
from django.apps import apps
from django.core import serializers
from django.test import Client

from integrations.models import ApiToken
from integrations.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db
URL = "/api/v1/incidents/"


def test_expired_revoked_and_wrong_scope_tokens_are_refused(responder, incident) -> None:
    expired = api_token_create(user=responder, name="old", scopes=["incidents:read"], expires_days=1)
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at="2000-01-01T00:00:00Z")
    revoked = api_token_create(user=responder, name="gone", scopes=["incidents:read"])
    api_token_revoke(token_id=revoked.token.pk)
    wrong = api_token_create(user=responder, name="evidence only", scopes=["evidence:read"])
    for created, status, words in ((expired, 401, "expired"), (revoked, 401, "revoked"), (wrong, 403, "scope")):
        response = Client(HTTP_AUTHORIZATION=f"Bearer {created.plaintext}").get(URL)
        assert response.status_code == status and words in response.json()["detail"]
        assert incident.title.encode() not in response.content


def test_a_bad_token_never_falls_back_to_the_session_cookie(client, responder, incident) -> None:
    # given: a browser session that could read the list
    client.force_login(responder)
    assert client.get(URL).status_code == 200
    # when: the same client also sends a wrong token
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer wp_AAAAAAAA_" + "x" * 43)
    # then: the token alone decides
    assert response.status_code == 401 and incident.title.encode() not in response.content


def test_session_writes_need_the_csrf_token(responder, incident) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(responder)
    response = browser.post(f"{URL}{incident.pk}/notes/", {"body": "x"}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


def test_token_requests_need_no_csrf_token(responder, incident, token_for) -> None:
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {token_for(responder)}")
    response = client.post(f"{URL}{incident.pk}/notes/", {"body": "x"}, content_type="application/json")
    assert response.status_code == 201


def test_no_token_plaintext_anywhere_in_the_database(api, responder, incident, token_for) -> None:
    # given: tokens created and used for reads and writes
    plaintext = token_for(responder)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    client.get(URL)
    client.post(f"{URL}{incident.pk}/notes/", {"body": "seen"}, content_type="application/json")
    secret = plaintext.split("_", 2)[2]  # wp_<id>_<secret>; the secret itself may contain "_"
    assert len(secret) == 43
    # then: no row of any model holds the token or its secret part
    for model in apps.get_models():
        dump = serializers.serialize("json", model._default_manager.all())
        assert secret not in dump, model.__name__


def test_schema_needs_authentication_and_is_served_to_a_token(responder, token_for) -> None:
    assert Client().get("/api/schema/").status_code == 401
    response = Client(HTTP_AUTHORIZATION=f"Bearer {token_for(responder, ['incidents:read'])}").get(
        "/api/schema/", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 200 and "/api/v1/incidents/" in response.json()["paths"]


def test_docs_page_redirects_to_login_and_serves_vendored_assets(client, responder) -> None:
    assert Client().get("/api/docs/").status_code == 302
    client.force_login(responder)
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page and "cdn" not in page.lower()
