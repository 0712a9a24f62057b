"""Roles, as Django groups. Services and selectors call these; templates only mirror them.

viewer   – reads cases;
responder – works cases: ticks steps, writes notes, uploads evidence, moves the phase;
manager  – also assigns, restricts, overrides the close gate and sees every case;
admin    – everything (a Django superuser counts as admin).
"""

from django.contrib.auth.models import AnonymousUser, User

VIEWER = "viewer"
RESPONDER = "responder"
MANAGER = "manager"
ADMIN = "admin"
ROLES = (VIEWER, RESPONDER, MANAGER, ADMIN)

AnyUser = User | AnonymousUser


class PermissionDeniedError(Exception):
    """The actor's role does not allow this change."""


def _groups(user: AnyUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_watchpost_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
        user._watchpost_groups = cached  # type: ignore[union-attr,attr-defined]
    return cached


def is_admin(user: AnyUser) -> bool:
    return bool(user.is_authenticated and (getattr(user, "is_superuser", False) or ADMIN in _groups(user)))


def can_manage(user: AnyUser) -> bool:
    return is_admin(user) or MANAGER in _groups(user)


def can_work(user: AnyUser) -> bool:
    return can_manage(user) or RESPONDER in _groups(user)


def can_read(user: AnyUser) -> bool:
    return can_work(user) or VIEWER in _groups(user)


def require(allowed: bool, message: str) -> None:
    if not allowed:
        raise PermissionDeniedError(message)
