"""API v1 routes. Every view is exempt from the login redirect: the API answers 401 itself."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required, login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, re_path
from django.views.defaults import page_not_found
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from incidents.api import actions, checklist, evidence, incidents, notes, observables, playbooks, tickets, timeline
from incidents.api.common import ApiView


def _api(view: type[ApiView] | Any) -> Callable[..., Any]:
    return login_not_required(view.as_view())


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The project's handler404: under /api/ a problem+json answer, elsewhere Django's page."""
    if request.path.startswith("/api/"):
        body = {"type": "about:blank", "title": "Not found", "status": 404, "detail": "No such API endpoint."}
        return JsonResponse(body, status=404, content_type="application/problem+json")
    return page_not_found(request, exception)


v1 = [
    path("incidents/", _api(incidents.IncidentListView), name="incident-list"),
    path("incidents/<int:incident_id>/", _api(incidents.IncidentDetailView), name="incident-detail"),
    path("incidents/<int:incident_id>/checklist/", _api(checklist.ChecklistView), name="checklist"),
    re_path(
        r"^incidents/(?P<incident_id>[0-9]+)/checklist/(?P<item_id>[0-9]+)/(?P<action>tick|untick|skip|decide)/$",
        _api(checklist.ChecklistItemActionView),
        name="checklist-item-action",
    ),
    path("incidents/<int:incident_id>/notes/", _api(notes.NoteListView), name="note-list"),
    path("incidents/<int:incident_id>/evidence/", _api(evidence.EvidenceListView), name="evidence-list"),
    path(
        "incidents/<int:incident_id>/evidence/<int:evidence_id>/download/",
        _api(evidence.EvidenceDownloadView),
        name="evidence-download",
    ),
    path("incidents/<int:incident_id>/timeline/", _api(timeline.TimelineView), name="timeline"),
    path("incidents/<int:incident_id>/observables/", _api(observables.ObservableListView), name="observable-list"),
    path("incidents/<int:incident_id>/findings/", _api(observables.FindingListView), name="finding-list"),
    path(
        "incidents/<int:incident_id>/findings/<int:finding_id>/",
        _api(observables.FindingDetailView),
        name="finding-detail",
    ),
    path("incidents/<int:incident_id>/ticket-events/", _api(tickets.TicketEventView), name="ticket-events"),
    path("incidents/<int:incident_id>/action-runs/", _api(actions.ActionRunListView), name="action-run-list"),
    re_path(
        r"^incidents/(?P<incident_id>[0-9]+)/action-runs/(?P<run_id>[0-9]+)/(?P<decision>approve|reject|cancel)/$",
        _api(actions.ActionRunDecisionView),
        name="action-run-decision",
    ),
    path("playbooks/", _api(playbooks.PlaybookListView), name="playbook-list"),
    path("playbooks/<slug:slug>/", _api(playbooks.PlaybookDetailView), name="playbook-detail"),
]

_swagger = SpectacularSwaggerSplitView.as_view(url_name="api-schema")


@login_required
def api_docs(request: HttpRequest) -> HttpResponse:
    """Swagger UI from vendored assets; its init script is a same-origin file (no inline script).
    Swagger UI sets inline styles, so this page alone allows them."""
    response: HttpResponse = _swagger(request)
    response["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return response


schema = [
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    # The UI page is for people: the login redirect applies. Its assets are vendored (sidecar).
    path("docs/", api_docs, name="api-docs"),
]
