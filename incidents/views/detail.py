"""The incident page (the responder's home during an incident) and its header controls."""

from django.contrib.auth import get_user_model
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from incidents import phases, services
from incidents.errors import ValidationError
from incidents.forms import AnalystEventForm, IncidentCreateForm
from incidents.models import Finding, Incident, Phase, Priority, Resolution, Severity
from incidents.selectors import (
    TimelineFilters,
    checklist_for_incident,
    checklist_progress,
    incident_get_for_user,
    related_incidents,
    timeline_page,
)
from incidents.views.common import AuthedRequest, back_to, int_or_none, service_errors
from incidents.views.timeline import timeline_rows
from integrations.aws.guardduty import FindingParseError, NormalizedFinding, parse_finding
from playbooks.selectors import playbook_for_finding_type, playbook_list


def incident_context(request: AuthedRequest, incident: Incident) -> dict[str, object]:
    finding = incident.findings.order_by("-finding_updated_at", "-id").first()
    parts = checklist_for_incident(incident=incident)
    return {
        "incident": incident,
        "parts": parts,
        "progress": checklist_progress(parts),
        "next_phases": [(p, Phase(p).label) for p in phases.allowed_next(incident.phase)],
        "finding": finding,
        "facts": _facts(finding),
        "related": related_incidents(incident=incident, user=request.user),
        "notes": incident.notes.select_related("author", "updated_by"),
        "evidence": incident.evidence.select_related("uploaded_by"),
        "recent_events": timeline_rows(
            timeline_page(incident=incident, filters=TimelineFilters(order="desc"), cursor=None, size=20).items
        ),
        "severities": Severity.choices,
        "priorities": Priority.choices,
        "resolutions": Resolution.choices[1:],
        "people": get_user_model().objects.filter(is_active=True).order_by("username"),
        "now": timezone.now(),
    }


def _facts(finding: Finding | None) -> NormalizedFinding | None:
    """What the stored finding says, read by the same parser that ingested it."""
    if finding is None:
        return None
    try:
        return parse_finding(finding.raw)
    except FindingParseError:
        return None  # stored before ingestion validated documents: the panel says there is no finding


@require_GET
@service_errors
def incident_detail(request: AuthedRequest, incident_id: int) -> HttpResponse:
    incident = incident_get_for_user(user=request.user, incident_id=incident_id)
    return render(request, "incidents/incident_detail.html", incident_context(request, incident))


def _detail_url(incident_id: int) -> str:
    return reverse("incidents:detail", args=[incident_id])


@require_POST
@service_errors
def incident_phase(request: AuthedRequest, incident_id: int) -> HttpResponse:
    services.incident_change_phase(
        incident_id=incident_id,
        actor=request.user,
        to=request.POST.get("to", ""),
        reason=request.POST.get("reason", "").strip(),
        override_reason=request.POST.get("override_reason", ""),
        resolution=request.POST.get("resolution") or None,
    )
    return back_to(request, _detail_url(incident_id))


@require_POST
@service_errors
def incident_fields(request: AuthedRequest, incident_id: int) -> HttpResponse:
    changes: dict[str, object] = {}
    for field in ("severity", "priority"):
        if field in request.POST:
            changes[field] = int_or_none(request.POST[field])
    for field in ("resolution", "title", "summary"):
        if field in request.POST:
            changes[field] = request.POST[field].strip()
    services.incident_update(incident_id=incident_id, actor=request.user, **changes)
    return back_to(request, _detail_url(incident_id))


@require_POST
@service_errors
def incident_assign(request: AuthedRequest, incident_id: int) -> HttpResponse:
    services.incident_assign(
        incident_id=incident_id,
        actor=request.user,
        commander_id=int_or_none(request.POST.get("commander")),
        assignee_ids=[pk for pk in map(int_or_none, request.POST.getlist("assignees")) if pk],
    )
    return back_to(request, _detail_url(incident_id))


@require_POST
@service_errors
def incident_restrict(request: AuthedRequest, incident_id: int) -> HttpResponse:
    services.incident_set_restricted(
        incident_id=incident_id, actor=request.user, restricted=request.POST.get("restricted") == "on"
    )
    return back_to(request, _detail_url(incident_id))


@require_POST
@service_errors
def analyst_event(request: AuthedRequest, incident_id: int) -> HttpResponse:
    form = AnalystEventForm(request.POST)
    if not form.is_valid():
        raise ValidationError(form.error_text())
    services.analyst_event_add(
        incident_id=incident_id,
        actor=request.user,
        occurred_at=form.cleaned_data["occurred_at"],
        summary=form.cleaned_data["summary"],
        source=form.cleaned_data["source"],
    )
    return back_to(request, reverse("incidents:timeline", args=[incident_id]))


@service_errors
def incident_create(request: AuthedRequest) -> HttpResponse:
    form = IncidentCreateForm(request.POST or None, playbooks=playbook_list())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        playbook = data["playbook"] or playbook_for_finding_type(finding_type=data["finding_type"])
        incident = services.incident_open(
            title=data["title"],
            summary=data["summary"],
            playbook=playbook,
            actor=request.user,
            severity=data["severity"],
            priority=data["priority"],
            finding_type=data["finding_type"],
            cluster_name=data["cluster_name"],
            account_id=data["account_id"],
            region=data["region"],
        )
        return HttpResponseRedirect(_detail_url(incident.pk), status=303)
    return render(request, "incidents/incident_create.html", {"form": form}, status=422 if form.errors else 200)
