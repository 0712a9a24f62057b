"""Timeline writers: one small function per event kind (Saleor's order/events.py shape).

Only services call these, inside the transaction that made the change, so a change and its
timeline row commit or roll back together. Never call them from signals.
"""

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from incidents.models import Incident, TimelineEvent
from playbooks.models import Playbook

Kind = TimelineEvent.Kind


def event_add(
    *,
    incident: Incident,
    kind: str,
    summary: str,
    actor: User | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEvent:
    now = timezone.now()
    # Every event is activity on the case: the list sorts by it.
    Incident.objects.filter(pk=incident.pk).update(updated_at=now)
    return TimelineEvent.objects.create(
        incident=incident,
        kind=kind,
        actor=actor,
        summary=summary[:500],
        data=data or {},
        occurred_at=occurred_at or now,
    )


def incident_created_event(*, incident: Incident, actor: User | None) -> TimelineEvent:
    return event_add(incident=incident, kind=Kind.CREATED, actor=actor, **created_event_text(incident.playbook))


def created_event_text(playbook: Playbook) -> dict[str, Any]:
    """The "opened" row's summary and data (also written set-based by ingestion)."""
    return {
        "summary": f"Incident opened from playbook {playbook.slug} v{playbook.version}",
        "data": {"playbook": playbook.slug, "playbook_version": playbook.version},
    }


def phase_changed_event(
    *, incident: Incident, actor: User | None, old: str, new: str, reason: str = "", override: str = ""
) -> TimelineEvent:
    summary = f"Phase {old} → {new}" + (f": {reason}" if reason else "")
    if override:
        summary += f" (close gate overridden: {override})"
    return event_add(
        incident=incident,
        kind=Kind.PHASE,
        actor=actor,
        summary=summary,
        data={"from": old, "to": new, "reason": reason} | ({"override_reason": override} if override else {}),
    )


def field_changed_event(
    *, incident: Incident, actor: User | None, field: str, old: object, new: object
) -> TimelineEvent:
    return event_add(
        incident=incident,
        kind=Kind.FIELD,
        actor=actor,
        summary=f"{field.replace('_', ' ').capitalize()} changed from {old or '—'} to {new or '—'}",
        data={"field": field, "from": old, "to": new},
    )


def assignment_event(*, incident: Incident, actor: User | None, summary: str, data: dict[str, Any]) -> TimelineEvent:
    return event_add(incident=incident, kind=Kind.ASSIGNMENT, actor=actor, summary=summary, data=data)
