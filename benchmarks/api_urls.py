"""P11's two pings next to the app's URLs.

- /bench-api/plain/: a plain Django `JsonResponse` (the reference: no authentication at all);
- /bench-api/drf/: a DRF view of the API (`ApiView`) behind the API's own Bearer-token
  authentication and scope check, answering the same body.
"""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from config.urls import urlpatterns as app_urlpatterns
from incidents.api.common import ApiView


@login_not_required
def plain_ping(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


class DrfPing(ApiView):
    read_scope = "incidents:read"

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    *app_urlpatterns,
    path("bench-api/plain/", plain_ping),
    path("bench-api/drf/", login_not_required(DrfPing.as_view())),
]
