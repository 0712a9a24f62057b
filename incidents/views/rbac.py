"""RBAC remediation forms on the incident page: propose a plan, propose a rollback.

Inspections go through the generic action launcher (`playbooks.action_views.action_request`); these
two need their own entry because the plan is taken from a run Watchpost computed, never from the form.
"""

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from incidents.models import Incident
from incidents.selectors import incident_get_for_user
from incidents.services.rbac import rbac_remediation_propose, rbac_rollback_propose
from incidents.views.common import AuthedRequest, back_to, int_or_none, service_errors
from playbooks.models import ChecklistItem


@require_POST
@service_errors
def rbac_propose(request: AuthedRequest, incident_id: int) -> HttpResponse:
    # A form lists the plan's targets as checkboxes; without any, the whole plan is meant.
    targets = request.POST.getlist("target") or None
    run = rbac_remediation_propose(
        incident_id=incident_id,
        actor=request.user,
        source_run_id=int_or_none(request.POST.get("source_run")) or 0,
        targets=targets,
        item_id=int_or_none(request.POST.get("item")),
    )
    return back_to(request, reverse("incidents:detail", args=[incident_id]) + f"#run-{run.pk}")


@require_POST
@service_errors
def rbac_rollback(request: AuthedRequest, incident_id: int, run_id: int) -> HttpResponse:
    run = rbac_rollback_propose(incident_id=incident_id, actor=request.user, remediation_run_id=run_id)
    return back_to(request, reverse("incidents:detail", args=[incident_id]) + f"#run-{run.pk}")


@require_GET
def rbac_panel(request: AuthedRequest, incident_id: int, item_id: int) -> HttpResponse:
    """The step's RBAC panel alone: htmx polls it while a run is queued or running, so reports appear."""
    try:
        incident = incident_get_for_user(user=request.user, incident_id=incident_id)
        item = ChecklistItem.objects.select_related("step").get(pk=item_id, incident=incident)
    except (Incident.DoesNotExist, ChecklistItem.DoesNotExist) as exc:
        raise Http404("Not found, or not visible to you.") from exc
    return render(request, "actions/rbac_panel.html", {"incident": incident, "item": item})
