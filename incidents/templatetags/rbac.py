"""Template helpers for the RBAC action panels (`templates/actions/rbac_*.html`)."""

from typing import Any

from django import template

from incidents.models import Incident
from incidents.services.rbac import INSPECT, clusters_for_incident
from integrations.kubernetes.rbac import subject_label as _subject_label
from playbooks.models import ActionRun

register = template.Library()


@register.simple_tag
def rbac_clusters(incident: Incident) -> dict[str, Any]:
    clusters, selected = clusters_for_incident(incident=incident)
    return {"clusters": clusters, "selected": selected}


@register.simple_tag
def rbac_latest_inspection(incident: Incident) -> ActionRun | None:
    """The newest succeeded inspection of the case: the plan a remediation is proposed from."""
    return (
        ActionRun.objects.filter(incident=incident, action=INSPECT, status=ActionRun.Status.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .first()
    )


@register.filter
def any_active(runs: list[ActionRun]) -> bool:
    return any(run.is_active and run.status != ActionRun.Status.PROPOSED for run in runs)


@register.filter
def rollback_pending_or_done(run: ActionRun) -> bool:
    """A rollback of this remediation is proposed, queued, running or succeeded (so none can be proposed)."""
    over = (ActionRun.Status.REJECTED, ActionRun.Status.CANCELLED, ActionRun.Status.FAILED)
    return run.children.filter(action="rbac.rollback").exclude(status__in=over).exists()


@register.filter
def subject_label(subject: dict[str, Any]) -> str:
    return _subject_label(subject)


@register.filter
def annotation(obj: dict[str, Any] | None, key: str) -> str:
    return str(((obj or {}).get("metadata") or {}).get("annotations", {}).get(key, "—"))
