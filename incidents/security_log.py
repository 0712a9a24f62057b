"""Authentication events in the log (ASVS 16.3.1): who, from where, when; never the password.

Django announces logins through its auth signals; listening to them is the supported hook, and this
module writes log lines and starts the session timeout clocks at sign-in (django-axes separately
counts failures and locks out).
"""

import logging
import time
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

log = logging.getLogger("watchpost.security")


def _address(request: HttpRequest | None) -> str:
    return (request.META.get("REMOTE_ADDR") if request is not None else None) or "-"


def _clean(value: object) -> str:
    # No log injection (ASVS 16.4.1): a username cannot start a new line.
    return str(value).replace("\n", "\\n").replace("\r", "\\r")[:150]


@receiver(user_login_failed)
def login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    log.warning("login failed user=%s address=%s", _clean(credentials.get("username", "")), _address(request))


@receiver(user_logged_in)
def logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    log.info("login user=%s address=%s", _clean(user.get_username()), _address(request))
    if request is not None and hasattr(request, "session"):
        # The clocks of config.middleware.SessionTimeoutMiddleware start at sign-in, in the same save.
        now = int(time.time())
        request.session["wp_started"] = request.session["wp_seen"] = now


@receiver(user_logged_out)
def logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    log.info("logout user=%s address=%s", _clean(user.get_username() if user else "-"), _address(request))
