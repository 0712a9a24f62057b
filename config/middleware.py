"""Our middleware: the response headers Django 5.2 does not set by itself, session timeouts, the audit log."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

# Everything is vendored and served from our own origin; htmx needs no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        # Case data must not linger in shared proxies or the browser's back-forward cache.
        if not request.path.startswith("/static/"):
            response.setdefault("Cache-Control", "no-store")
        return response


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
security_log = logging.getLogger("watchpost.security")


def _denial_log(request: HttpRequest, status: int) -> None:
    """Every refusal (S13), pages and API alike: who, from where, what; never headers or cookies."""
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else "-"
    path = request.path.replace("\n", "\\n").replace("\r", "\\r")[:300]
    address = request.META.get("REMOTE_ADDR", "-")
    security_log.warning("denied status=%s user=%s address=%s %s %s", status, name, address, request.method, path)


class AuditMiddleware:
    """Write exactly one audit row for every state-changing request, refused ones included.

    After the view: by then the session user is known, and DRF has put a token's user on the
    request. Reads are not audited here (evidence reads have their custody events).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code in (401, 403):
            _denial_log(request, response.status_code)
        if request.method in UNSAFE_METHODS:
            from incidents.services.audit import audit_record  # models are not ready at import time

            user = getattr(request, "user", None)
            if getattr(request, "auth", None) is not None:
                via = "token"
            else:
                via = "session" if user is not None and user.is_authenticated else "anonymous"
            audit_record(
                actor=user,
                via=via,
                method=request.method,
                path=request.path,
                status_code=response.status_code,
                address=request.META.get("REMOTE_ADDR"),
            )
        return response


class SessionTimeoutMiddleware:
    """End a browser session after WATCHPOST_SESSION_IDLE_SECONDS without a request, and after
    WATCHPOST_SESSION_ABSOLUTE_SECONDS in all, whatever the activity (ASVS 7.3).

    `logout()` flushes the session row, so the cookie is dead on the server, not only in the browser.
    The last-seen time is written at most once a minute: a session save on every request would cost
    a database write per click.
    """

    WRITE_EVERY = 60

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            self._check(request)
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> None:
        now = int(time.time())
        session = request.session
        started, seen = session.setdefault("wp_started", now), session.get("wp_seen", now)
        idle, absolute = settings.WATCHPOST_SESSION_IDLE_SECONDS, settings.WATCHPOST_SESSION_ABSOLUTE_SECONDS
        if now - seen > idle or now - started > absolute:
            logout(request)
            return
        if now - seen >= self.WRITE_EVERY or "wp_seen" not in session:
            session["wp_seen"] = now
