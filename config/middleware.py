"""Response headers Django 5.2 does not set by itself."""

from collections.abc import Callable

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


class AuditMiddleware:
    """Write exactly one audit row for every state-changing request, refused ones included.

    After the view: by then the session user is known, and DRF has put a token's user on the
    request. Reads are not audited here (evidence reads have their custody events).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
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
