"""The per-process token cache never outlives a revocation made here, and honours its TTL."""

import pytest

from integrations.models import ApiToken
from integrations.services import TokenError, api_token_authenticate, api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def _auth(plaintext: str) -> ApiToken:
    return api_token_authenticate(header=f"Bearer {plaintext}", scope="incidents:read", address="127.0.0.1")


def test_revocation_here_applies_at_once_even_when_cached(responder, settings) -> None:
    settings.WATCHPOST_API_TOKEN_CACHE_SECONDS = 60
    created = api_token_create(user=responder, name="x", scopes=["incidents:read"])
    _auth(created.plaintext)  # now cached
    api_token_revoke(token_id=created.token.pk)
    with pytest.raises(TokenError, match="revoked"):
        _auth(created.plaintext)


def test_without_a_ttl_every_check_reads_the_database(responder, settings) -> None:
    settings.WATCHPOST_API_TOKEN_CACHE_SECONDS = 0
    created = api_token_create(user=responder, name="x", scopes=["incidents:read"])
    _auth(created.plaintext)
    ApiToken.objects.filter(pk=created.token.pk).update(scopes=["evidence:read"])
    with pytest.raises(TokenError, match="lacks"):
        _auth(created.plaintext)


def test_each_request_gets_its_own_user_object(responder, settings) -> None:
    settings.WATCHPOST_API_TOKEN_CACHE_SECONDS = 60
    created = api_token_create(user=responder, name="x", scopes=["incidents:read"])
    first, second = _auth(created.plaintext), _auth(created.plaintext)
    assert first.user == second.user and first.user is not second.user
    first.user.first_name = "changed in one request"
    assert second.user.first_name != "changed in one request"
