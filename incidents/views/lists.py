"""The incident list: filters in the URL, keyset pagination, no COUNT(*)."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from incidents import keyset
from incidents.models import Phase, Priority, Severity, incident_reference
from incidents.selectors import INCIDENT_SORTS, IncidentFilters, cluster_names_for_user, incident_list_rows_for_user
from incidents.sla import sla_state
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
        page = incident_list_rows_for_user(
            user=request.user, filters=filters, cursor=request.GET.get("cursor"), size=page_size_from(request)
        )
    except keyset.CursorError:
        return render(request, "400.html", {"message": "That page link is no longer valid."}, status=400)
    context = {
        "page": page,
        "rows": incident_rows(page.items),
        "filters": filters,
        "query": _query_without_cursor(request),
    }
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


@dataclass(frozen=True)
class IncidentRow:
    """One list row, with every value the template prints already worked out.

    At 50 rows a page, resolving model lookups, `{% url %}` and choice labels in the template cost
    more than the query (13 ms against 2 ms at 100k incidents); plain attributes keep the page
    within P4's budget.
    """

    url: str
    reference: str
    title: str
    restricted: bool
    cluster: str
    severity: int
    severity_label: str
    priority_label: str
    phase_label: str
    sla_class: str
    sla_label: str
    commander: str
    updated_iso: str
    updated: str


SEVERITY_LABELS = dict(Severity.choices)
PRIORITY_LABELS = dict(Priority.choices)
PHASE_LABELS = dict(Phase.choices)
SLA_CLASSES = {"breached": "sla-breached", "missed": "sla-breached", "met": "sla-met"}


def incident_rows(incidents: list[Any]) -> list[IncidentRow]:
    """From the named rows of `incident_list_rows_for_user`."""
    base = reverse("incidents:list")  # detail pages live at <list>/<id>/
    now = timezone.now()
    rows = []
    for incident in incidents:
        sla = sla_state(incident, now)
        rows.append(
            IncidentRow(
                url=f"{base}{incident.id}/",
                reference=incident_reference(incident.id),
                title=incident.title,
                restricted=incident.restricted,
                cluster=incident.cluster_name or "—",
                severity=incident.severity,
                severity_label=str(SEVERITY_LABELS[incident.severity]),
                priority_label=str(PRIORITY_LABELS[incident.priority]),
                phase_label=str(PHASE_LABELS[incident.phase]),
                sla_class=SLA_CLASSES.get(sla.state, ""),
                sla_label=sla.label,
                commander=incident.commander__username or "—",
                updated_iso=incident.updated_at.isoformat(),
                updated=f"{incident.updated_at:%Y-%m-%d %H:%M}",
            )
        )
    return rows


def _query_without_cursor(request: AuthedRequest) -> str:
    query = request.GET.copy()
    query.pop("cursor", None)
    return query.urlencode()


def _people() -> list[tuple[int, str]]:
    User = get_user_model()
    return list(User.objects.filter(is_active=True).order_by("username").values_list("pk", "username")[:500])
