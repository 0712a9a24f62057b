"""What every API view shares: scopes, the visible incident, cursor pages, ETags."""

import hashlib
import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.api.errors import PreconditionFailedError
from incidents.models import Incident
from incidents.selectors import incident_get_for_user

MAX_PAGE_SIZE = 200


class ApiView(APIView):
    """Base view: `read_scope` guards GET, `write_scope` every other method (token clients only)."""

    read_scope: str | None = None
    write_scope: str | None = None

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        """Every successful JSON read carries an ETag, and If-None-Match on it answers 304."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if (
            request.method == "GET"
            and response.status_code == 200
            and isinstance(response, Response)
            and response.data is not None
            and not response.has_header("ETag")
        ):
            tag = etag_of(response.data)
            response["ETag"] = tag
            if tag in _tags(request.headers.get("If-None-Match", "")):
                not_modified = Response(status=304, headers={"ETag": tag})
                return super().finalize_response(request, not_modified, *args, **kwargs)
        return response

    def actor(self) -> User:
        user = self.request.user
        assert isinstance(user, User)  # HasScope let only authenticated users through
        return user


def visible_incident(request: Request, incident_id: int, *, header_only: bool = True) -> Incident:
    """The incident if the caller may see it; Incident.DoesNotExist (→ 404) otherwise."""
    return incident_get_for_user(user=request.user, incident_id=incident_id, header_only=header_only)


def client_address(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class PageQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    cursor = serializers.CharField(required=False, help_text="`next_cursor` of the previous page.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


def page_size(data: dict[str, Any]) -> int:
    return int(data.get("page_size") or settings.WATCHPOST_API_PAGE_SIZE)


def page_serializer(child: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:  # type: ignore[type-arg]
    """A `{results: [...], next_cursor}` serializer class for the schema."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "results": child(many=True),
            "next_cursor": serializers.CharField(
                allow_null=True, help_text="Pass as `cursor` for the next page; null on the last page."
            ),
        },
    )


def query_params(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def etag_of(data: Any) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder).encode()).hexdigest()
    return f'"{digest[:32]}"'


def with_etag(request: Request, data: Any, status: int = 200) -> Response:
    """A representation with its ETag; 304 when the client's If-None-Match already names it."""
    tag = etag_of(data)
    if status == 200 and tag in _tags(request.headers.get("If-None-Match", "")):
        response = Response(status=304)
    else:
        response = Response(data, status=status)
    response["ETag"] = tag
    return response


def require_match(request: Request, current: Any) -> None:
    """412 when If-Match is sent and names neither `*` nor the current representation's ETag."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = _tags(header)
    if "*" not in tags and etag_of(current) not in tags:
        raise PreconditionFailedError()


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
