"""Every API error as `application/problem+json` (RFC 9457): type, title, status, detail.

Service errors carry messages written for people; they are passed through as the detail.
"""

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from incidents import errors
from incidents.keyset import CursorError

PROBLEM = "application/problem+json"
log = logging.getLogger("django.request")


class PreconditionFailedError(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The incident changed since you read it (If-Match does not match its ETag); read it again."
    default_code = "precondition_failed"
    title = "Precondition failed"


# Service errors → (status, title). Order matters: subclasses first.
_SERVICE_ERRORS: list[tuple[type[Exception], int, str]] = [
    (errors.CloseGateError, 409, "Close gate"),
    (errors.IncidentClosedError, 409, "Incident closed"),
    (errors.InvalidTransitionError, 409, "Transition not allowed"),
    (errors.NoteConflictError, 409, "Edit conflict"),
    (errors.EvidenceIntegrityError, 409, "Evidence integrity check failed"),
    (errors.EvidenceRejectedError, 422, "Evidence refused"),
    (errors.PermissionDeniedError, 403, "Not allowed"),
    (errors.IncidentError, 422, "Not accepted"),
    (CursorError, 400, "Invalid cursor"),
]


def problem(status_code: int, title: str, detail: Any, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status_code, "detail": detail} | extra
    return Response(body, status=status_code, content_type=PROBLEM)


def _from_service(exc: Exception) -> Response | None:
    for kind, status_code, title in _SERVICE_ERRORS:
        if isinstance(exc, kind):
            extra = {"open_items": exc.open_items} if isinstance(exc, errors.CloseGateError) else {}
            return problem(status_code, title, str(exc), **extra)
    if isinstance(exc, ObjectDoesNotExist | Http404):
        return problem(404, "Not found", "Not found, or not visible to you.")
    return None


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    answer = _from_service(exc)
    if answer is not None:
        return answer
    response = exception_handler(exc, context)
    if response is None:
        # A bug. Logged with its traceback like Django's own 500s; the client gets problem+json
        # without internals (ASVS 16.5.1).
        log.error("API error on %s", context["request"].path, exc_info=exc)
        return problem(500, "Server error", "The error was logged. Retry later or tell the Watchpost admins.")
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        answer = problem(400, "Invalid request", _first_message(exc.detail), errors=exc.detail)
    else:
        title = getattr(exc, "title", None) or str(exc.default_detail).rstrip(".")
        answer = problem(response.status_code, title, _first_message(exc.detail))
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            answer[header] = response[header]
    return answer


def _first_message(detail: Any) -> str:
    """A one-line summary of DRF's nested error detail: `field: message`."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            message = _first_message(value)
            return message if key == "non_field_errors" else f"{key}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)
