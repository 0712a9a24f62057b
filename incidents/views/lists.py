"""The incident list: filters in the URL, keyset pagination, no COUNT(*)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from incidents import keyset
from incidents.models import Phase, Priority, Severity
from incidents.selectors import INCIDENT_SORTS, IncidentFilters, cluster_names_for_user, incident_list_for_user
from incidents.views.common import AuthedRequest, int_or_none

SORT_LABELS = {"sla": "SLA urgency", "-updated": "Last activity", "-created": "Newest", "-severity": "Severity"}


def filters_from(request: AuthedRequest) -> IncidentFilters:
    params = request.GET
    sort = params.get("sort", "sla")
    return IncidentFilters(
        phase=params.get("phase", "open"),
        severity=int_or_none(params.get("severity")),
        priority=int_or_none(params.get("priority")),
        assignee_id=int_or_none(params.get("assignee")),
        cluster=params.get("cluster", "").strip()[:100],
        q=params.get("q", "").strip()[:200],
        sort=sort if sort in INCIDENT_SORTS else "sla",
    )


def page_size_from(request: AuthedRequest) -> int:
    size = int_or_none(request.GET.get("size")) or settings.WATCHPOST_LIST_PAGE_SIZE
    return max(1, min(size, 100))


@require_GET
def incident_list(request: AuthedRequest) -> HttpResponse:
    filters = filters_from(request)
    try:
        page = incident_list_for_user(
            user=request.user, filters=filters, cursor=request.GET.get("cursor"), size=page_size_from(request)
        )
    except keyset.CursorError:
        return render(request, "400.html", {"message": "That page link is no longer valid."}, status=400)
    context = {"page": page, "filters": filters, "query": _query_without_cursor(request)}
    if request.htmx and request.htmx.target == "more-row":
        return render(request, "incidents/incident_list.html#rows", context)
    context |= {
        "phases": Phase.choices,
        "severities": Severity.choices,
        "priorities": Priority.choices,
        "sorts": SORT_LABELS,
        "clusters": cluster_names_for_user(user=request.user),
        "people": _people(),
    }
    return render(request, "incidents/incident_list.html", context)


def _query_without_cursor(request: AuthedRequest) -> str:
    query = request.GET.copy()
    query.pop("cursor", None)
    return query.urlencode()


def _people() -> list[tuple[int, str]]:
    User = get_user_model()
    return list(User.objects.filter(is_active=True).order_by("username").values_list("pk", "username")[:500])
