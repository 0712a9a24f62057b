"""API tokens: create (the plaintext is returned once), authenticate, revoke; and how to reach a configured cluster."""

import copy
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from integrations.kubernetes.client import Connection
from integrations.models import ApiToken, Cluster
from integrations.tokens import token_generate, token_key_id, token_matches

security_log = logging.getLogger("watchpost.security")
# Writing last-use on every request would make each API call a write; a minute's precision is enough.
LAST_USED_PRECISION = timedelta(seconds=60)


class TokenError(Exception):
    """Why a token was refused: `status` is 401 (who are you?) or 403 (not allowed to do this)."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    plaintext: str  # show once; it cannot be recovered


def api_token_create(*, user: User, name: str, scopes: list[str], expires_days: int | None = None) -> CreatedToken:
    unknown = sorted(set(scopes) - set(ApiToken.SCOPES))
    if unknown or not scopes:
        raise ValueError(
            f"unknown scopes {unknown}; choose from {', '.join(ApiToken.SCOPES)}"
            if unknown
            else "give at least one scope"
        )
    new = token_generate()
    expires = timezone.now() + timedelta(days=expires_days) if expires_days else None
    token = ApiToken.objects.create(
        name=name, user=user, key_id=new.key_id, token_hash=new.sha256, scopes=sorted(set(scopes)), expires_at=expires
    )
    return CreatedToken(token=token, plaintext=new.plaintext)


def api_token_revoke(*, token_id: int, actor: User | None = None, address: str | None = None) -> None:
    revoked = ApiToken.objects.filter(pk=token_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if revoked:
        security_log.info(
            "token revoked id=%s by=%s address=%s", token_id, actor.get_username() if actor else "-", address or "-"
        )
    _TOKEN_CACHE.clear()  # this process at once; the others within WATCHPOST_API_TOKEN_CACHE_SECONDS


# Verified token rows (with their user) per process, for WATCHPOST_API_TOKEN_CACHE_SECONDS: the row
# lookup through the ORM cost ~0.8 ms a request here, eight times P11's budget for the whole check.
# The hash, expiry, revocation and scope are still checked on every request against the cached row;
# a revocation, an expiry moved in the database or a disabled account is seen within the TTL
# (C3 allows up to 60 s). Misses are not cached, and the cache is bounded.
_TOKEN_CACHE: dict[str, tuple[float, ApiToken]] = {}
_TOKEN_CACHE_MAX = 1000


def _token_row(key_id: str) -> ApiToken | None:
    ttl = settings.WATCHPOST_API_TOKEN_CACHE_SECONDS
    moment = time.monotonic()
    cached = _TOKEN_CACHE.get(key_id)
    if cached is not None and moment - cached[0] < ttl:
        return cached[1]
    token = ApiToken.objects.select_related("user").filter(key_id=key_id).first()
    if token is not None and ttl > 0:
        if len(_TOKEN_CACHE) >= _TOKEN_CACHE_MAX:
            _TOKEN_CACHE.clear()
        _TOKEN_CACHE[key_id] = (moment, token)
    return token


def _refused(key_id: str | None, address: str | None, reason: str, *, status: int = 401) -> NoReturn:
    # The key id is the token's public prefix, never the secret part (S13).
    security_log.warning("token refused key=%s address=%s reason=%s", key_id or "-", address or "-", reason)
    raise TokenError(reason, status=status)


def _bearer(header: str) -> str:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise TokenError("send the token as 'Authorization: Bearer <token>'")
    return value.strip()


def api_token_authenticate(
    *, header: str, scope: str | None, address: str | None, now: datetime | None = None
) -> ApiToken:
    """The token in an Authorization header, if it is valid now and carries `scope` (None: any scope;
    the REST API checks the scope per operation once the token is known)."""
    plaintext = _bearer(header)
    key_id = token_key_id(plaintext)
    token = _token_row(key_id) if key_id else None
    # One message for unknown, mistyped and wrong tokens: no oracle for which part was wrong.
    if token is None or not token_matches(plaintext, token.token_hash):
        _refused(key_id, address, "invalid token")
    assert token is not None
    now = now or timezone.now()
    if token.revoked_at is not None:
        _refused(key_id, address, "this token was revoked")
    if token.expires_at is not None and token.expires_at <= now:
        _refused(key_id, address, "this token has expired")
    if not token.user.is_active:
        _refused(key_id, address, "the token's account is disabled")
    if scope is not None and scope not in token.scopes:
        _refused(key_id, address, f"this token lacks the '{scope}' scope", status=403)
    stale = token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION
    if stale or token.last_used_address != address:
        # Logged with the last-use refresh: once a minute per token, and at once from a new address.
        security_log.info("token used key=%s user=%s address=%s", key_id, token.user.get_username(), address or "-")
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_address=address)
        token.last_used_at, token.last_used_address = now, address
    # Each request gets its own token and user objects: the cached ones are shared by this process.
    answer, user = _shallow_copy(token), _shallow_copy(token.user)
    answer._state.fields_cache = {"user": user}
    return answer


def _shallow_copy(instance: Any) -> Any:
    """A new instance with a copy of the attributes (copy.copy goes through pickling's __reduce_ex__,
    ten times slower for a model)."""
    clone = instance.__class__.__new__(instance.__class__)
    clone.__dict__ = instance.__dict__.copy()
    clone._state = copy.copy(instance._state)
    return clone


def service_account_create(*, username: str, role: str) -> User:
    """An account for one integration: in `role`'s group, no usable password (API tokens only)."""
    from django.contrib.auth.models import Group

    user = User.objects.create_user(username=username, password=None)
    user.groups.add(Group.objects.get(name=role))
    return user


def cluster_connection(cluster: Cluster) -> Connection:
    """The plain values `integrations.kubernetes.client.api_client` needs to reach a configured cluster."""
    if cluster.via == Cluster.Via.KUBECONFIG:
        return Connection(name=cluster.name, kubeconfig=cluster.kubeconfig_path, context=cluster.kubeconfig_context)
    account = cluster.account
    return Connection(
        name=cluster.name,
        eks_name=cluster.name,
        region=cluster.region,
        account_id=account.account_id if account else "",
        role_arn=account.role_arn if account else "",
        external_id=account.external_id if account else "",
    )
