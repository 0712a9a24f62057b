"""Outbound webhook events: one small function per event type, called by the services.

Each builds the event's data from the change now (inside the service's transaction) and hands it
to `integrations.webhooks` on commit, so a rolled-back change sends nothing. Never from signals.
"""

from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from incidents.models import Evidence, Incident, Note, Severity
from integrations.webhooks import subscribed_event_types, webhook_event_emit


def incident_summary(incident: Incident) -> dict[str, Any]:
    """What every event carries about its incident (the ticket side finds its issue by source/external_ref)."""
    return {
        "id": incident.pk,
        "reference": incident.reference,
        "title": incident.title,
        "severity": Severity(incident.severity).name.lower(),
        "priority": incident.priority,
        "phase": incident.phase,
        "resolution": incident.resolution,
        "source": incident.source,
        "external_ref": incident.external_ref,
        "api_url": f"/api/v1/incidents/{incident.pk}/",
    }


def announced(event_type: str) -> bool:
    """Whether any active subscription wants this event: a caller may skip building what it would carry."""
    return event_type in subscribed_event_types()


def _emit(event_type: str, incident: Incident, actor: User | None, **extra: Any) -> None:
    if not announced(event_type):
        return
    data = {"incident": incident_summary(incident), "actor": actor.get_username() if actor else None} | extra
    transaction.on_commit(partial(webhook_event_emit, event_type=event_type, data=data))


def incident_created(*, incident: Incident, actor: User | None) -> None:
    _emit("incident.created", incident, actor)


def incident_updated(*, incident: Incident, actor: User | None, changes: dict[str, Any]) -> None:
    if "severity" in changes:  # the API's spelling (low … critical), not the stored number
        changes = changes | {"severity": {k: _severity_name(v) for k, v in changes["severity"].items()}}
    _emit("incident.updated", incident, actor, changes=changes)


def _severity_name(value: object) -> object:
    return Severity(value).name.lower() if value in Severity.values else value


def incident_phase_changed(*, incident: Incident, actor: User | None, old: str, new: str) -> None:
    _emit("incident.phase_changed", incident, actor, changes={"phase": {"from": old, "to": new}})
    if new == "closed":
        _emit("incident.closed", incident, actor)


def checklist_item_completed(
    *, incident: Incident, actor: User | None, step_id: str, title: str, status: str, comment: str
) -> None:
    item = {"step_id": step_id, "title": title, "status": status, "comment": comment}
    _emit("checklist.item_completed", incident, actor, item=item)


def note_added(*, incident: Incident, actor: User | None, note: Note) -> None:
    _emit("note.added", incident, actor, note={"id": note.pk, "body": note.body})


def evidence_added(*, incident: Incident, actor: User | None, evidence: Evidence) -> None:
    data = {"id": evidence.pk, "name": evidence.original_name, "sha256": evidence.sha256, "size": evidence.size}
    _emit("evidence.added", incident, actor, evidence=data)


def remediation_applied(*, incident: Incident, actor: User | None, summary: str, details: dict[str, Any]) -> None:
    """For the remediation service (ActionRun apply): what was changed, e.g. the bindings removed."""
    _emit("remediation.applied", incident, actor, remediation={"summary": summary} | details)


def sla_breached(*, incident: Incident, breach: dict[str, Any]) -> None:
    _emit("sla.breached", incident, None, sla=breach)
