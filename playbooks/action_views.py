"""Launching, approving and following playbook action runs from the incident page."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from incidents.selectors import incident_queryset_for_user
from incidents.views.common import AuthedRequest, back_to, int_or_none, service_errors
from playbooks import actions
from playbooks.models import ActionRun, ChecklistItem
from playbooks.views import _item_response

# Form fields that steer the request itself; everything else is the action's parameters, which
# the handler validates (it knows their types).
_CONTROL_FIELDS = {"csrfmiddlewaretoken", "action", "item", "parent"}


@require_POST
@service_errors
def action_request(request: AuthedRequest, incident_id: int) -> HttpResponse:
    params = {key: request.POST.get(key, "") for key in request.POST if key not in _CONTROL_FIELDS}
    run = actions.action_run_request(
        incident_id=incident_id,
        action=request.POST.get("action", ""),
        actor=request.user,
        params=params,
        item_id=int_or_none(request.POST.get("item")),
        parent_id=int_or_none(request.POST.get("parent")),
    )
    if run.checklist_item_id and request.htmx:
        item = ChecklistItem.objects.select_related("step", "incident").get(pk=run.checklist_item_id)
        return _item_response(request, item)
    return back_to(request, reverse("incidents:detail", args=[incident_id]) + f"#run-{run.pk}")


def _run_for_user(request: AuthedRequest, incident_id: int, run_id: int) -> ActionRun:
    visible = incident_queryset_for_user(request.user)
    return get_object_or_404(
        ActionRun.objects.select_related("requested_by", "approved_by").filter(incident__in=visible),
        pk=run_id,
        incident_id=incident_id,
    )


@require_GET
def action_run_detail(request: AuthedRequest, incident_id: int, run_id: int) -> HttpResponse:
    """The run's row (htmx polls it while the run is queued or running)."""
    return render(request, "actions/_run.html", {"run": _run_for_user(request, incident_id, run_id)})


def _after_change(request: AuthedRequest, run: ActionRun) -> HttpResponse:
    if request.htmx:
        return render(request, "actions/_run.html", {"run": _run_for_user(request, run.incident_id, run.pk)})
    return back_to(request, reverse("incidents:detail", args=[run.incident_id]) + f"#run-{run.pk}")


@require_POST
@service_errors
def action_run_approve(request: AuthedRequest, incident_id: int, run_id: int) -> HttpResponse:
    run = _run_for_user(request, incident_id, run_id)
    return _after_change(request, actions.action_run_approve(run_id=run.pk, actor=request.user))


@require_POST
@service_errors
def action_run_reject(request: AuthedRequest, incident_id: int, run_id: int) -> HttpResponse:
    run = _run_for_user(request, incident_id, run_id)
    reason = request.POST.get("reason", "")
    return _after_change(request, actions.action_run_reject(run_id=run.pk, actor=request.user, reason=reason))


@require_POST
@service_errors
def action_run_cancel(request: AuthedRequest, incident_id: int, run_id: int) -> HttpResponse:
    run = _run_for_user(request, incident_id, run_id)
    return _after_change(request, actions.action_run_cancel(run_id=run.pk, actor=request.user))
