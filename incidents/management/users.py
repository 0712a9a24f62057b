"""What the incident commands share."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import CommandError


def command_user(username: str) -> User | None:
    """The user named by a command's `--as`, or None when none was named; an unknown name is an error."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user {username!r}.")
    return user  # type: ignore[return-value]
