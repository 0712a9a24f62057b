"""Who is calling the API, and may this caller do this operation.

Token clients (`Authorization: Bearer wp_…`) are judged by the token alone: a request that carries
an Authorization header never falls back to the session cookie. A browser without the header uses
its session, with Django's CSRF check on unsafe methods. Scopes narrow what a token may do; the
token's user and role still decide which incidents it sees (selectors) and what it may change
(services).
"""

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from integrations.models import ApiToken
from integrations.services import TokenError, api_token_authenticate

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        try:
            token = api_token_authenticate(header=header, scope=None, address=request.META.get("REMOTE_ADDR"))
        except TokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="watchpost"'


class BrowserSessionAuthentication(SessionAuthentication):
    """The browser's session, only when no Authorization header was sent."""

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        if "HTTP_AUTHORIZATION" in request.META:
            return None
        return super().authenticate(request)  # type: ignore[return-value]


def token_scopes(request: Request) -> frozenset[str] | None:
    """The scopes of the calling token, or None for a browser session (its role alone decides)."""
    if isinstance(request.auth, ApiToken):
        return frozenset(request.auth.scopes)
    return None


class HasScope(BasePermission):
    """Authenticated, and for a token: holding the view's scope for this method.

    A view names `read_scope` (GET) and `write_scope` (anything else); a view without them is
    refused to tokens, so a forgotten declaration fails closed.
    """

    message = "This token lacks the scope for this operation."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        scopes = token_scopes(request)
        if scopes is None or not hasattr(view, (request.method or "get").lower()):
            return True  # a session (its role decides), or a method the view lacks (DRF answers 405)
        needed = required_scope(view, request.method or "GET")
        if needed is None or needed not in scopes:
            self.message = f"This token lacks the '{needed}' scope." if needed else self.message
            return False
        return True


def required_scope(view: Any, method: str) -> str | None:
    attribute = "read_scope" if method in SAFE_METHODS else "write_scope"
    return getattr(view, attribute, None)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token: `wp_<id>_<secret>`."}


class BrowserSessionScheme(OpenApiAuthenticationExtension):
    target_class = BrowserSessionAuthentication
    name = "browserSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "The browser's session (CSRF)."}


class JsonFirstNegotiation(DefaultContentNegotiation):
    """Skip parsing the Accept header when it takes anything, or exactly the first renderer's type (JSON
    for the API): the parse was a third of DRF's own cost per request (P11)."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        if accept == "*/*" or accept == renderers[0].media_type:
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
