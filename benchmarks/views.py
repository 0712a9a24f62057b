"""Reference endpoints: the same rows as the real pages, as plain `.values()` and `JsonResponse`.

No template, no selector, no permission work: only what every request pays anyway (the session and
authentication middleware, since LoginRequiredMiddleware covers these views like every other one).
The bench user is a manager, so the real pages see every incident and the rows are the same.
"""

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from incidents.keyset import order_by_args
from incidents.models import Incident, Phase, TimelineEvent
from incidents.selectors import DEFAULT_SORT, INCIDENT_SORTS, TIMELINE_ORDER

# What a row of the incident list shows: reference, title, restricted badge, cluster, severity,
# priority, phase, SLA state (from the four SLA columns), commander and last activity.
LIST_COLUMNS = (
    "id",
    "title",
    "restricted",
    "cluster_name",
    "severity",
    "priority",
    "phase",
    "acknowledged",
    "sla_due_at",
    "detected_at",
    "acknowledged_at",
    "commander__username",
    "updated_at",
)
# What a timeline row shows.
TIMELINE_COLUMNS = ("id", "occurred_at", "recorded_at", "kind", "summary", "actor__username")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def incident_list_reference(request: HttpRequest) -> JsonResponse:
    queryset = Incident.objects.all()
    phase = request.GET.get("phase", "open")
    if phase == "open":
        queryset = queryset.exclude(phase=Phase.CLOSED)
    elif phase in Phase.values:
        queryset = queryset.filter(phase=phase)
    severity = _int(request.GET.get("severity"), 0)
    if severity:
        queryset = queryset.filter(severity=severity)
    size = max(1, min(_int(request.GET.get("size"), settings.WATCHPOST_LIST_PAGE_SIZE), 100))
    ordering = order_by_args(INCIDENT_SORTS[DEFAULT_SORT])
    rows = list(queryset.order_by(*ordering).values(*LIST_COLUMNS)[:size])
    return JsonResponse({"results": rows})


def timeline_reference(request: HttpRequest, incident_id: int) -> JsonResponse:
    size = max(1, min(_int(request.GET.get("size"), 100), 500))
    ordering = order_by_args(TIMELINE_ORDER["asc"])
    rows = list(
        TimelineEvent.objects.filter(incident_id=incident_id).order_by(*ordering).values(*TIMELINE_COLUMNS)[:size]
    )
    return JsonResponse({"results": rows})
