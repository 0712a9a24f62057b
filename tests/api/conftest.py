"""API test helpers: a token per (user, scopes), and a client that sends it."""

from collections.abc import Callable

import pytest
from django.test import Client

from integrations.models import ApiToken
from integrations.services import api_token_create

ALL_SCOPES = list(ApiToken.SCOPES)


@pytest.fixture
def token_for() -> Callable[..., str]:
    """`token_for(user, ["incidents:read"])` → the plaintext of a fresh token."""

    def make(user, scopes: list[str] | None = None, **kwargs: object) -> str:
        return api_token_create(user=user, name="tests", scopes=scopes or ALL_SCOPES, **kwargs).plaintext  # type: ignore[arg-type]

    return make


@pytest.fixture
def api(token_for) -> Callable[..., Client]:
    """`api(user, scopes)` → a test client that sends that user's Bearer token on every request."""

    def make(user, scopes: list[str] | None = None) -> Client:
        return Client(HTTP_AUTHORIZATION=f"Bearer {token_for(user, scopes)}")

    return make
