"""The timeline page (filters, cursor pagination) and its streamed CSV and JSON exports."""

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_GET

from incidents import keyset
from incidents.models import Incident, TimelineEvent, incident_reference
from incidents.selectors import (
    TIMELINE_EXPORT_FIELDS,
    TimelineFilters,
    cluster_findings_for_user,
    cluster_incidents_for_user,
    cluster_timeline_page,
    incident_get_for_user,
    timeline_actors,
    timeline_export_rows,
    timeline_page,
)
from incidents.views.common import AuthedRequest, int_or_none, service_errors

Kind = TimelineEvent.Kind
# Lanes: where an event came from. Every kind belongs to exactly one lane.
# (key, column heading, filter label, kinds)
LANES: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    ("finding", "Finding", "Finding", frozenset({Kind.CREATED, Kind.FINDING})),
    ("workflow", "Phase", "Phase, people", frozenset({Kind.PHASE, Kind.FIELD, Kind.ASSIGNMENT})),
    ("sla", "SLA", "SLA", frozenset({Kind.SLA})),
    ("checklist", "Checklist", "Checklist, decisions", frozenset({Kind.CHECKLIST, Kind.DECISION})),
    ("actions", "Actions", "Actions, queries", frozenset({Kind.ACTION})),
    ("notes", "Notes", "War-room notes", frozenset({Kind.NOTE})),
    ("evidence", "Evidence", "Evidence", frozenset({Kind.EVIDENCE})),
    ("analyst", "Analyst", "Analyst, review", frozenset({Kind.ANALYST, Kind.REVIEW})),
)
LANE_OF_KIND = {kind: lane for lane, _, _, kinds in LANES for kind in kinds}


def filters_from(request: AuthedRequest) -> TimelineFilters:
    lanes = set(request.GET.getlist("lane"))
    picked = set(request.GET.getlist("kind")) | {kind for lane, _, _, kinds in LANES if lane in lanes for kind in kinds}
    kinds = tuple(sorted(k for k in picked if k in TimelineEvent.Kind.values))
    order = request.GET.get("order", "asc")
    return TimelineFilters(
        kinds=kinds,
        actor_id=int_or_none(request.GET.get("actor")),
        order=order if order in ("asc", "desc") else "asc",
        since=_utc(request.GET.get("since")),
        until=_utc(request.GET.get("until")),
    )


def _utc(value: str | None) -> datetime | None:
    """A date or datetime-local field, read as UTC (the timeline shows UTC); anything else is ignored."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.combine(day, time())
    except ValueError:  # well-formed but impossible, e.g. month 13
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if timezone.is_naive(parsed) else parsed


@require_GET
@service_errors
def timeline(request: AuthedRequest, incident_id: int) -> HttpResponse:
    incident = incident_get_for_user(user=request.user, incident_id=incident_id, header_only=True)
    filters = filters_from(request)
    size = max(1, min(int_or_none(request.GET.get("size")) or 100, 500))
    try:
        page = timeline_page(incident=incident, filters=filters, cursor=request.GET.get("cursor"), size=size)
    except keyset.CursorError:
        return render(request, "400.html", {"message": "That page link is no longer valid."}, status=400)
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "rows": timeline_rows(page.items),
        "actors": timeline_actors(incident=incident),
        "incident": incident,
        "page": page,
        "filters": filters,
        "kinds": TimelineEvent.Kind.choices,
        "lanes": LANES,
        "selected_lanes": request.GET.getlist("lane"),
        "selected_kinds": request.GET.getlist("kind"),
        "query": query.urlencode(),
    }
    if request.htmx and request.htmx.target == "more-events":
        return render(request, "incidents/timeline.html#rows", context)
    return render(request, "incidents/timeline.html", context)


@dataclass(frozen=True)
class TimelineRow:
    """An event as the page prints it; worked out in Python because a 100-event page spent most of
    its time in template lookups and date filters (P7)."""

    occurred: str
    recorded: str
    kind: str
    summary: str
    actor: str
    lane: str = ""
    lanes: tuple[bool, ...] = ()
    incident_id: int | None = None
    reference: str = ""


KIND_LABELS = dict(TimelineEvent.Kind.choices)


LANE_MARKS = {lane: tuple(lane == other for other, *_ in LANES) for lane, *_ in LANES}


def timeline_rows(events: list[Any]) -> list[TimelineRow]:
    """From the named rows of `timeline_page` (or `cluster_timeline_page`, which adds the incident)."""
    rows = []
    for event in events:
        lane = LANE_OF_KIND.get(event.kind, "workflow")
        incident_id = getattr(event, "incident_id", None)
        rows.append(
            TimelineRow(
                occurred=f"{event.occurred_at:%Y-%m-%d %H:%M:%S}",
                recorded=event.recorded_at.isoformat(),
                kind=str(KIND_LABELS.get(event.kind, event.kind)),
                summary=event.summary,
                actor=event.actor__username or "system",
                lane=lane,
                lanes=LANE_MARKS[lane],
                incident_id=incident_id,
                reference=incident_reference(incident_id) if incident_id else "",
            )
        )
    return rows


class _Echo:
    def write(self, value: str) -> str:
        return value


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    # CSV/formula injection (ASVS 1.2.10): a cell a spreadsheet would evaluate gets a leading quote.
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    if isinstance(value, dict):
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    return value


def _csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(["id", "occurred_at", "recorded_at", "kind", "actor", "summary", "data"])
    for row in rows:
        yield writer.writerow([_csv_cell(row[field]) for field in TIMELINE_EXPORT_FIELDS])


def _json_chunks(incident: Incident, rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    yield '{"incident": ' + json.dumps(incident.reference) + ', "events": ['
    for i, row in enumerate(rows):
        row["actor"] = row.pop("actor__username")
        row["lane"] = LANE_OF_KIND.get(row["kind"], "")
        yield ("," if i else "") + "\n" + json.dumps(row, cls=DjangoJSONEncoder)
    yield "\n]}\n"


@require_GET
@service_errors
def timeline_export(request: AuthedRequest, incident_id: int, fmt: str) -> HttpResponseBase:
    incident = incident_get_for_user(user=request.user, incident_id=incident_id, header_only=True)
    rows = timeline_export_rows(incident=incident, filters=filters_from(request))
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json_chunks(incident, rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{incident.reference}-timeline.{fmt}"'
    return response


@require_GET
@service_errors
def cluster_timeline(request: AuthedRequest, cluster: str) -> HttpResponse:
    """Every incident and finding on one cluster, and their events merged in time order."""
    filters = filters_from(request)
    size = max(1, min(int_or_none(request.GET.get("size")) or 200, 500))
    try:
        page = cluster_timeline_page(
            user=request.user, cluster=cluster, filters=filters, cursor=request.GET.get("cursor"), size=size
        )
    except keyset.CursorError:
        return render(request, "400.html", {"message": "That page link is no longer valid."}, status=400)
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "cluster": cluster,
        "incidents": cluster_incidents_for_user(user=request.user, cluster=cluster),
        "findings": cluster_findings_for_user(user=request.user, cluster=cluster),
        "rows": timeline_rows(page.items),
        "page": page,
        "filters": filters,
        "lanes": LANES,
        "selected_lanes": request.GET.getlist("lane"),
        "query": query.urlencode(),
    }
    if request.htmx and request.htmx.target == "more-events":
        return render(request, "incidents/cluster_timeline.html#rows", context)
    return render(request, "incidents/cluster_timeline.html", context)
