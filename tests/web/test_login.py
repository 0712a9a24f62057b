"""Sign-in: failures are logged without the password and throttled per user and address."""

import logging

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def account(responder):
    responder.set_password(PASSWORD)
    responder.save()
    return responder


def _login(client: Client, password: str):
    return client.post(reverse("login"), {"username": "responder", "password": password}, REMOTE_ADDR="192.0.2.10")


def test_login_with_the_right_password_reaches_the_incident_list(client: Client, account) -> None:
    response = _login(client, PASSWORD)
    # the home page, which sends responders to the list (and managers to the dashboard)
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(response["Location"])["Location"] == reverse("incidents:list")


def test_failed_login_is_logged_with_user_and_address_but_not_the_password(client: Client, account, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="watchpost.security"):
        response = _login(client, "wrong-password-123")
    assert response.status_code == 200 and "did not match" in response.content.decode()
    lines = [r.getMessage() for r in caplog.records if r.name == "watchpost.security"]
    assert lines == ["login failed user=responder address=192.0.2.10"]
    assert "wrong-password-123" not in caplog.text


def test_five_failures_lock_the_account_from_that_address_even_with_the_right_password(
    client: Client, account, settings
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "nope-nope-nope")
    locked = _login(client, PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_below_the_limit_do_not_lock(client: Client, account, settings) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "nope-nope-nope")
    assert _login(client, PASSWORD).status_code == 302
