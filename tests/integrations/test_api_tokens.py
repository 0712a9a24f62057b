"""API tokens: shown once, stored as a hash only, refused when expired, revoked, disabled or out of scope."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from integrations.models import ApiToken
from integrations.services import TokenError, api_token_authenticate, api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def _auth(plaintext: str, scope: str = "findings:write", address: str = "192.0.2.7") -> ApiToken:
    return api_token_authenticate(header=f"Bearer {plaintext}", scope=scope, address=address)


def test_a_new_token_authenticates_and_records_its_last_use(responder) -> None:
    created = api_token_create(user=responder, name="jira", scopes=["findings:write", "incidents:read"])
    token = _auth(created.plaintext)
    token.refresh_from_db()
    assert token.pk == created.token.pk and token.last_used_address == "192.0.2.7" and token.last_used_at


def test_the_database_never_holds_the_plaintext(responder) -> None:
    created = api_token_create(user=responder, name="jira", scopes=["findings:write"])
    secret_part = created.plaintext.split("_", 2)[2]  # the secret itself may contain "_"
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM integrations_apitoken")
        dump = repr(cursor.fetchall())
    assert created.plaintext not in dump and secret_part not in dump
    assert created.token.token_hash in dump  # what is stored is the hash


def test_the_token_has_at_least_128_random_bits_and_a_visible_prefix(responder) -> None:
    created = api_token_create(user=responder, name="x", scopes=["incidents:read"])
    prefix, key_id, secret = created.plaintext.split("_", 2)
    assert prefix == "wp" and key_id == created.token.key_id
    assert len(secret) * 6 >= 256  # 43 url-safe base64 characters


@pytest.mark.parametrize(
    "header,message",
    [
        ("Bearer wp_AAAAAAAA_" + "x" * 43, "invalid token"),
        ("Bearer not-a-token", "invalid token"),
        ("Basic dXNlcjpwYXNz", "Bearer"),
        ("", "Bearer"),
    ],
)
def test_unknown_or_malformed_tokens_are_refused(header: str, message: str) -> None:
    with pytest.raises(TokenError, match=message) as refused:
        api_token_authenticate(header=header, scope="findings:write", address=None)
    assert refused.value.status == 401


def test_a_tampered_secret_is_refused(responder) -> None:
    created = api_token_create(user=responder, name="x", scopes=["findings:write"])
    tampered = created.plaintext[:-1] + ("A" if created.plaintext[-1] != "A" else "B")
    with pytest.raises(TokenError, match="invalid token"):
        _auth(tampered)


def test_expired_revoked_disabled_and_wrong_scope_tokens_are_refused(responder) -> None:
    expired = api_token_create(user=responder, name="old", scopes=["findings:write"], expires_days=1)
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TokenError, match="expired"):
        _auth(expired.plaintext)

    revoked = api_token_create(user=responder, name="gone", scopes=["findings:write"])
    api_token_revoke(token_id=revoked.token.pk)
    with pytest.raises(TokenError, match="revoked"):
        _auth(revoked.plaintext)

    narrow = api_token_create(user=responder, name="read-only", scopes=["incidents:read"])
    with pytest.raises(TokenError, match="findings:write") as refused:
        _auth(narrow.plaintext)
    assert refused.value.status == 403

    disabled = api_token_create(user=responder, name="x", scopes=["findings:write"])
    responder.is_active = False
    responder.save()
    with pytest.raises(TokenError, match="disabled"):
        _auth(disabled.plaintext)


def test_unknown_scopes_are_refused_at_creation(responder) -> None:
    with pytest.raises(ValueError, match="unknown scopes"):
        api_token_create(user=responder, name="x", scopes=["everything"])


def test_create_api_token_prints_the_token_once(responder, capsys) -> None:
    call_command("create_api_token", user="responder", scopes="findings:write,incidents:read", expires=30)
    out, err = capsys.readouterr()
    plaintext = out.strip()
    assert _auth(plaintext).user == responder
    assert "not shown again" in err and plaintext not in err
    token = ApiToken.objects.get()
    assert token.scopes == ["findings:write", "incidents:read"] and token.expires_at > timezone.now()


def test_create_api_token_names_an_unknown_user() -> None:
    with pytest.raises(CommandError, match="no user named"):
        call_command("create_api_token", user="ghost", scopes="findings:write")


def test_token_use_refusal_and_revocation_are_in_the_security_log_without_the_secret(responder, caplog) -> None:
    import logging

    created = api_token_create(user=responder, name="jira", scopes=["incidents:read"])
    key_id = created.token.key_id
    with caplog.at_level(logging.INFO, logger="watchpost.security"):
        api_token_authenticate(header=f"Bearer {created.plaintext}", scope=None, address="198.51.100.4")
        api_token_revoke(token_id=created.token.pk, actor=responder, address="198.51.100.5")
        with pytest.raises(TokenError):
            api_token_authenticate(header=f"Bearer {created.plaintext}", scope=None, address="198.51.100.4")
    assert caplog.messages == [
        f"token used key={key_id} user=responder address=198.51.100.4",
        f"token revoked id={created.token.pk} by=responder address=198.51.100.5",
        f"token refused key={key_id} address=198.51.100.4 reason=this token was revoked",
    ]
    assert created.plaintext not in caplog.text and created.plaintext.split("_", 2)[2] not in caplog.text
