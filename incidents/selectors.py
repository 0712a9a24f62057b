"""Incident reads. Every queryset starts from `incident_queryset_for_user`, so access rules apply
before anything else (NetBox's `restrict()` idea)."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import Q, QuerySet

from incidents import keyset, permissions
from incidents.models import Finding, Incident, Observable, Phase, TimelineEvent, incident_reference
from playbooks.checklists import checklist_items
from playbooks.models import ChecklistItem

INCIDENT_SORTS: dict[str, keyset.Ordering] = {
    # SLA urgency: cases still waiting for acknowledgement first, the nearest deadline first.
    "sla": [("acknowledged", False), ("sla_due_at", False), ("id", False)],
    "-updated": [("updated_at", True), ("id", True)],
    "-created": [("created_at", True), ("id", True)],
    "-severity": [("severity", True), ("id", True)],
}
DEFAULT_SORT = "sla"


def incident_queryset_for_user(user: User | AnonymousUser) -> QuerySet[Incident]:
    if not permissions.can_read(user):
        return Incident.objects.none()
    if permissions.can_manage(user):
        return Incident.objects.all()
    # A subquery rather than a join on assignees: no duplicate rows, so no DISTINCT on the list.
    assigned = Incident.assignees.through.objects.filter(user_id=user.pk or 0).values("incident_id")
    return Incident.objects.filter(Q(restricted=False) | Q(commander_id=user.pk) | Q(pk__in=assigned))


def incident_get_for_user(*, user: User | AnonymousUser, incident_id: int, header_only: bool = False) -> Incident:
    """Raises Incident.DoesNotExist when the case is missing or not visible: the caller answers 404.

    `header_only` loads just what a sub-page's heading shows (the timeline and exports need no more).
    """
    queryset = incident_queryset_for_user(user)
    if header_only:
        return queryset.only("id", "title", "phase").get(pk=incident_id)
    return queryset.select_related("playbook", "commander").prefetch_related("assignees").get(pk=incident_id)


@dataclass(frozen=True)
class IncidentFilters:
    phase: str = "open"  # a phase, "open" (anything but closed) or "all"
    severity: int | None = None
    priority: int | None = None
    assignee_id: int | None = None
    cluster: str = ""
    q: str = ""
    source: str = ""
    external_ref: str = ""
    sort: str = DEFAULT_SORT
    extra: dict[str, Any] = field(default_factory=dict)


def _apply_filters(queryset: QuerySet[Incident], filters: IncidentFilters) -> QuerySet[Incident]:
    if filters.phase == "open":
        queryset = queryset.exclude(phase=Phase.CLOSED)
    elif filters.phase in Phase.values:
        queryset = queryset.filter(phase=filters.phase)
    if filters.severity:
        queryset = queryset.filter(severity=filters.severity)
    if filters.priority:
        queryset = queryset.filter(priority=filters.priority)
    if filters.assignee_id:
        queryset = queryset.filter(
            Q(commander_id=filters.assignee_id)
            | Q(pk__in=Incident.assignees.through.objects.filter(user_id=filters.assignee_id).values("incident_id"))
        )
    if filters.cluster:
        queryset = queryset.filter(cluster_name=filters.cluster)
    if filters.q:
        queryset = queryset.filter(title__icontains=filters.q)
    if filters.source:
        queryset = queryset.filter(source=filters.source)
    if filters.external_ref:
        queryset = queryset.filter(external_ref=filters.external_ref)
    return queryset


# What a list row needs, every sort key included (the cursor is made from them).
LIST_ROW_COLUMNS = (
    "id", "title", "restricted", "cluster_name", "severity", "priority", "phase", "acknowledged",
    "acknowledged_at", "detected_at", "sla_due_at", "updated_at", "created_at", "commander__username",
)  # fmt: skip


def incident_list_for_user(
    *, user: User | AnonymousUser, filters: IncidentFilters, cursor: str | None, size: int
) -> keyset.Page[Incident]:
    ordering = INCIDENT_SORTS.get(filters.sort, INCIDENT_SORTS[DEFAULT_SORT])
    queryset = _apply_filters(incident_queryset_for_user(user), filters).select_related("commander")
    return keyset.paginate(queryset, ordering=ordering, cursor=cursor, size=size)


def incident_list_rows_for_user(
    *, user: User | AnonymousUser, filters: IncidentFilters, cursor: str | None, size: int
) -> keyset.Page[Any]:
    """The list page's rows as named tuples of LIST_ROW_COLUMNS: the same rows and order as
    `incident_list_for_user`, without building model instances (a third of the page's CPU at 50 rows)."""
    ordering = INCIDENT_SORTS.get(filters.sort, INCIDENT_SORTS[DEFAULT_SORT])
    queryset = _apply_filters(incident_queryset_for_user(user), filters).values_list(*LIST_ROW_COLUMNS, named=True)
    return keyset.paginate(queryset, ordering=ordering, cursor=cursor, size=size)


# A loose index scan: one index probe per distinct cluster instead of reading every row, which a
# plain SELECT DISTINCT does (27 ms at 100k incidents against well under 1 ms here). Runs on
# PostgreSQL and SQLite; the only interpolated text is the constant visibility clause below.
_DISTINCT_CLUSTERS_SQL = """
WITH RECURSIVE names(name) AS (
    SELECT MIN(cluster_name) FROM {table} WHERE cluster_name > %s {visible}
    UNION ALL
    SELECT (SELECT MIN(cluster_name) FROM {table} WHERE cluster_name > names.name {visible})
    FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL LIMIT %s
"""


def cluster_names_for_user(*, user: User | AnonymousUser, limit: int = 200) -> list[str]:
    """The clusters of the incidents the user may see, for the list filter."""
    if not permissions.can_read(user):
        return []
    visible = "" if permissions.can_manage(user) else "AND NOT restricted"
    sql = _DISTINCT_CLUSTERS_SQL.format(table=Incident._meta.db_table, visible=visible)
    with connection.cursor() as cursor:
        cursor.execute(sql, ["", limit])
        names = {row[0] for row in cursor.fetchall()}
    if visible:  # plus the clusters of restricted cases the user works on
        names |= set(
            incident_queryset_for_user(user)
            .filter(restricted=True)
            .exclude(cluster_name="")
            .values_list("cluster_name", flat=True)
        )
    return sorted(names)[:limit]


# --- Timeline ---------------------------------------------------------------------------------------

TIMELINE_ORDER = {
    "asc": [("occurred_at", False), ("id", False)],
    "desc": [("occurred_at", True), ("id", True)],
}


@dataclass(frozen=True)
class TimelineFilters:
    kinds: tuple[str, ...] = ()
    actor_id: int | None = None
    order: str = "asc"
    since: datetime | None = None  # occurred at or after
    until: datetime | None = None  # occurred before


def _timeline_queryset(incident: Incident, filters: TimelineFilters) -> QuerySet[TimelineEvent]:
    queryset = TimelineEvent.objects.filter(incident=incident)
    if filters.kinds:
        queryset = queryset.filter(kind__in=filters.kinds)
    if filters.actor_id:
        queryset = queryset.filter(actor_id=filters.actor_id)
    return _in_window(queryset, filters)


def _in_window(queryset: QuerySet[TimelineEvent], filters: TimelineFilters) -> QuerySet[TimelineEvent]:
    if filters.since:
        queryset = queryset.filter(occurred_at__gte=filters.since)
    if filters.until:
        queryset = queryset.filter(occurred_at__lt=filters.until)
    return queryset


TIMELINE_ROW_COLUMNS = ("id", "kind", "occurred_at", "recorded_at", "summary", "actor__username")


def timeline_page(*, incident: Incident, filters: TimelineFilters, cursor: str | None, size: int) -> keyset.Page[Any]:
    """A page of events as named rows of TIMELINE_ROW_COLUMNS.

    `incident` must come from `incident_get_for_user`: visibility is checked there. Only what a page
    shows, and no model instances: building 100 events with their actors (and decoding each event's
    JSON `data`) was most of the page's CPU (P7).
    """
    ordering = TIMELINE_ORDER.get(filters.order, TIMELINE_ORDER["asc"])
    queryset = _timeline_queryset(incident, filters).values_list(*TIMELINE_ROW_COLUMNS, named=True)
    return keyset.paginate(queryset, ordering=ordering, cursor=cursor, size=size)


def timeline_actors(*, incident: Incident) -> list[tuple[int, str]]:
    """The people who appear on this incident's timeline, for the actor filter."""
    acting = TimelineEvent.objects.filter(incident=incident).values("actor_id")
    return list(User.objects.filter(pk__in=acting).order_by("username").values_list("pk", "username"))


TIMELINE_EXPORT_FIELDS = ("id", "occurred_at", "recorded_at", "kind", "actor__username", "summary", "data")


def timeline_export_rows(*, incident: Incident, filters: TimelineFilters) -> Iterator[dict[str, Any]]:
    """Every matching event as a plain dict, streamed from a server-side cursor."""
    ordering = TIMELINE_ORDER.get(filters.order, TIMELINE_ORDER["asc"])
    queryset = _timeline_queryset(incident, filters).order_by(*keyset.order_by_args(ordering))
    return queryset.values(*TIMELINE_EXPORT_FIELDS).iterator(chunk_size=2000)


# --- Checklist -------------------------------------------------------------------------------------


@dataclass
class ChecklistPart:
    number: int
    title: str
    items: list[ChecklistItem]

    @property
    def closed_count(self) -> int:
        return sum(1 for item in self.items if not item.is_open)

    @property
    def total(self) -> int:
        return len(self.items)


def checklist_for_incident(*, incident: Incident) -> list[ChecklistPart]:
    """The incident's checklist grouped by playbook part, in playbook order (one query once written)."""
    parts: dict[int, ChecklistPart] = {}
    for item in checklist_items(incident_id=incident.pk):
        part = parts.setdefault(item.step.part, ChecklistPart(item.step.part, item.step.part_title, []))
        part.items.append(item)
    return list(parts.values())


def checklist_progress(parts: list[ChecklistPart]) -> tuple[int, int]:
    """(closed items, all items) for the header, from the checklist already read (no query)."""
    return sum(part.closed_count for part in parts), sum(part.total for part in parts)


def related_incidents(
    *, incident: Incident, user: User | AnonymousUser, per_observable: int = 5
) -> list[tuple[str, str, list[tuple[int, str]]]]:
    """Observables of this case that also appear in other cases the user may see (two queries).

    Returns (kind, value, [(incident id, reference)…]) with the newest cases first.
    """
    observables = {o.pk: o for o in Observable.objects.filter(incidents=incident).order_by("kind", "value")}
    visible = incident_queryset_for_user(user).exclude(pk=incident.pk).values("pk")
    links = (
        Observable.incidents.through.objects.filter(observable_id__in=observables, incident_id__in=visible)
        .order_by("-incident_id")
        .values_list("observable_id", "incident_id")[:500]
    )
    others: dict[int, list[tuple[int, str]]] = {}
    for observable_id, other_id in links:
        found = others.setdefault(observable_id, [])
        if len(found) < per_observable:
            found.append((other_id, incident_reference(other_id)))
    return [(o.kind, o.value, others[pk]) for pk, o in observables.items() if pk in others]


# --- Cross-incident timeline of one cluster --------------------------------------------------------------

CLUSTER_TIMELINE_COLUMNS = (*TIMELINE_ROW_COLUMNS, "incident_id")


def cluster_incidents_for_user(*, user: User | AnonymousUser, cluster: str, limit: int = 200) -> QuerySet[Incident]:
    """Every case on the cluster the user may see, newest detection first."""
    return (
        incident_queryset_for_user(user)
        .filter(cluster_name=cluster)
        .select_related("commander")
        .order_by("-detected_at", "-id")[:limit]
    )


def cluster_findings_for_user(*, user: User | AnonymousUser, cluster: str, limit: int = 200) -> QuerySet[Finding]:
    """GuardDuty findings on the cluster: those of visible cases, and (managers) those not linked to one."""
    visible = incident_queryset_for_user(user).values("pk")
    linked = Q(incident_id__in=visible)
    scope = linked | Q(incident__isnull=True) if permissions.can_manage(user) else linked
    return Finding.objects.filter(scope, cluster_name=cluster).order_by("-last_seen", "-id").defer("raw")[:limit]


def cluster_timeline_page(
    *, user: User | AnonymousUser, cluster: str, filters: TimelineFilters, cursor: str | None, size: int
) -> keyset.Page[Any]:
    """Events of every visible case on the cluster, merged in time order, as named rows."""
    ordering = TIMELINE_ORDER.get(filters.order, TIMELINE_ORDER["asc"])
    cases = incident_queryset_for_user(user).filter(cluster_name=cluster).values("pk")
    queryset = TimelineEvent.objects.filter(incident_id__in=cases)
    if filters.kinds:
        queryset = queryset.filter(kind__in=filters.kinds)
    if filters.actor_id:
        queryset = queryset.filter(actor_id=filters.actor_id)
    rows = _in_window(queryset, filters).values_list(*CLUSTER_TIMELINE_COLUMNS, named=True)
    return keyset.paginate(rows, ordering=ordering, cursor=cursor, size=size)
