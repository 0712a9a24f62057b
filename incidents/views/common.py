"""What every incident view shares: turning service errors into clear answers, and small parsers."""

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRefresh, retarget
from django_htmx.middleware import HtmxDetails

from incidents.errors import IncidentError, NoteConflictError, PermissionDeniedError

View = Callable[..., HttpResponseBase]


class AuthedRequest(HttpRequest):
    """What our views receive: LoginRequiredMiddleware guarantees a user, django-htmx adds `htmx`."""

    user: User
    htmx: HtmxDetails


def service_errors(view: View) -> View:
    """Missing or invisible objects → 404, role refusals → 403, rule violations → a clear message.

    For htmx requests the message goes into the page's flash area (status 422 or 409, which our htmx
    configuration swaps); for plain form posts it becomes a flash message on the page we return to.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except ObjectDoesNotExist as exc:
            raise Http404("Not found, or not visible to you.") from exc
        except PermissionDeniedError as exc:
            return render(request, "403.html", {"message": str(exc)}, status=403)
        except NoteConflictError:
            raise  # the note views render the conflict with both versions themselves
        except IncidentError as exc:
            status = 409 if "closed" in str(exc) else 422
            if getattr(request, "htmx", False):
                response = render(request, "partials/flash.html", {"error": str(exc)}, status=status)
                return retarget(response, "#flash")
            messages.error(request, str(exc))
            return HttpResponseRedirect(safe_referer(request), status=303)

    return wrapper


def safe_referer(request: HttpRequest, default: str = "/") -> str:
    referer = request.headers.get("Referer", "")
    allowed = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return referer if referer and allowed else default


def back_to(request: HttpRequest, url: str) -> HttpResponse:
    """After a plain POST: redirect (303); after an htmx POST that changed the whole page: refresh."""
    if getattr(request, "htmx", False):
        return HttpResponseClientRefresh()
    return HttpResponseRedirect(url, status=303)


def int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str | None:
    # Behind the documented TLS proxy, gunicorn's forwarded-allow-ips decides REMOTE_ADDR.
    return request.META.get("REMOTE_ADDR") or None
