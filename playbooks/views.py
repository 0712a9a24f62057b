"""Checklist clicks (htmx, updating in place) and the playbook viewer."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from incidents.selectors import checklist_for_incident, checklist_progress
from incidents.views.common import AuthedRequest, back_to, service_errors
from playbooks import services
from playbooks.models import ChecklistItem, Playbook, PlaybookStep
from playbooks.selectors import playbook_list


def _item_response(request: AuthedRequest, item: ChecklistItem) -> HttpResponse:
    """The changed item, plus out-of-band updates of the part and header counters (and of
    other items a decision made not applicable, by re-rendering the item's part)."""
    if not request.htmx:
        return back_to(request, reverse("incidents:detail", args=[item.incident_id]))
    parts = checklist_for_incident(incident=item.incident)
    part = next(p for p in parts if p.number == item.step.part)
    context = {
        "incident": item.incident,
        "item": item,
        "part": part,
        "parts": parts,
        "progress": checklist_progress(parts),
        "decision": item.step.kind == PlaybookStep.Kind.DECISION,
        "open_part": item.step.part,  # the part just clicked in stays open even when it is complete
    }
    return render(request, "playbooks/checklist_update.html", context)


@require_POST
@service_errors
def checklist_item_status(request: AuthedRequest, incident_id: int, item_id: int) -> HttpResponse:
    item = services.checklist_item_set_status(
        item_id=item_id,
        actor=request.user,
        status=request.POST.get("status", ""),
        comment=request.POST.get("comment", ""),
    )
    return _item_response(request, item)


@require_POST
@service_errors
def checklist_item_decide(request: AuthedRequest, incident_id: int, item_id: int) -> HttpResponse:
    item = services.checklist_item_decide(
        item_id=item_id,
        actor=request.user,
        option_id=request.POST.get("option", ""),
        comment=request.POST.get("comment", ""),
    )
    return _item_response(request, item)


@require_GET
def playbook_index(request: AuthedRequest) -> HttpResponse:
    return render(request, "playbooks/playbook_list.html", {"playbooks": playbook_list()})


@require_GET
def playbook_detail(request: AuthedRequest, slug: str, version: int) -> HttpResponse:
    playbook = get_object_or_404(Playbook, slug=slug, version=version)
    steps = list(playbook.steps.all())
    parts: dict[int, tuple[str, list[object]]] = {}
    for step in steps:
        parts.setdefault(step.part, (step.part_title, []))[1].append(step)
    versions = Playbook.objects.filter(slug=slug).order_by("-version").values_list("version", flat=True)
    return render(
        request,
        "playbooks/playbook_detail.html",
        {"playbook": playbook, "parts": parts, "fixes": playbook.document.get("fixes", []), "versions": versions},
    )
