"""Sessions end on the server: idle timeout, absolute lifetime, logout and a deactivated account (S14)."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client: Client, responder) -> Client:
    client.force_login(responder)
    assert client.get(reverse("incidents:list")).status_code == 200  # stamps the session's times
    return client


def _age(client: Client, **seconds_ago: int) -> None:
    session = client.session
    for key, ago in seconds_ago.items():
        session[key] = session[key] - ago
    session.save()


def _is_signed_in(client: Client) -> bool:
    return client.get(reverse("incidents:list")).status_code == 200


def test_a_session_within_both_limits_stays(signed_in: Client, settings) -> None:
    _age(signed_in, wp_seen=settings.WATCHPOST_SESSION_IDLE_SECONDS - 60)
    assert _is_signed_in(signed_in)


def test_an_idle_session_ends_and_its_row_is_gone(signed_in: Client, settings) -> None:
    key = signed_in.session.session_key
    _age(signed_in, wp_seen=settings.WATCHPOST_SESSION_IDLE_SECONDS + 1)
    response = signed_in.get(reverse("incidents:list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not Session.objects.filter(session_key=key).exists()


def test_an_active_session_still_ends_at_the_absolute_lifetime(signed_in: Client, settings) -> None:
    _age(signed_in, wp_started=settings.WATCHPOST_SESSION_ABSOLUTE_SECONDS + 1)
    assert not _is_signed_in(signed_in)


def test_logout_kills_the_session_on_the_server(signed_in: Client) -> None:
    cookie = signed_in.cookies["sessionid"].value
    signed_in.post(reverse("logout"))
    replay = Client()
    replay.cookies["sessionid"] = cookie  # somebody kept the old cookie
    assert not _is_signed_in(replay)
    assert not Session.objects.filter(session_key=cookie).exists()


def test_a_deactivated_account_loses_its_open_session(signed_in: Client, responder) -> None:
    responder.is_active = False
    responder.save()
    assert not _is_signed_in(signed_in)
