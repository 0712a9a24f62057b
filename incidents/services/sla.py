"""SLA breach notification: an email to the people who must act, a timeline row, the `sla.breached` event.

The beat task `sla_breach_sweep_task` calls `sla_breaches_sweep` every minute or so. Each breach is
notified once: the SlaBreach row, unique per (incident, deadline), is inserted in the same transaction
as the timeline row and the email, so a second sweep, or two sweeps at once, find it and do nothing.
The email goes out before the commit: if the mail server refuses, the transaction rolls back and the
next sweep tries again (at least once; a crash between send and commit can repeat one email).
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone

from incidents import outbound, permissions, timeline
from incidents.models import Incident, Phase, Priority, SlaBreach
from incidents.sla import short_duration


def sla_breach_candidates(*, now: datetime, limit: int = 500) -> list[int]:
    """Open, unacknowledged cases past their deadline with no notification for that deadline yet."""
    notified = SlaBreach.objects.filter(incident_id=OuterRef("pk"), due_at=OuterRef("sla_due_at"))
    return list(
        Incident.objects.filter(acknowledged=False, sla_due_at__lt=now)
        .exclude(phase=Phase.CLOSED)
        .filter(~Exists(notified))
        .order_by("sla_due_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


def sla_breaches_sweep(*, now: datetime | None = None) -> int:
    """Notify every breach not notified yet; returns how many were notified now."""
    now = now or timezone.now()
    notified = [
        incident_id
        for incident_id in sla_breach_candidates(now=now)
        if sla_breach_notify(incident_id=incident_id, now=now)
    ]
    return len(notified)


def _recipients(incident: Incident) -> list[str]:
    """WATCHPOST_SLA_NOTIFY_EMAILS when set, else every manager; plus the commander and assignees."""
    configured = list(settings.WATCHPOST_SLA_NOTIFY_EMAILS)
    people = User.objects.filter(is_active=True).exclude(email="")
    if not configured:
        configured = list(people.filter(groups__name=permissions.MANAGER).values_list("email", flat=True))
    team = people.filter(pk__in=[*incident.assignees.values_list("pk", flat=True), incident.commander_id or 0])
    return sorted(set(configured) | set(team.values_list("email", flat=True)))


@transaction.atomic
def sla_breach_notify(*, incident_id: int, now: datetime | None = None) -> bool:
    """Notify the breach of this incident's current deadline, once. Returns False when there is
    nothing to notify: acknowledged meanwhile, closed, deadline not passed, or notified already."""
    now = now or timezone.now()
    incident = Incident.objects.select_for_update(of=("self",)).select_related("playbook").get(pk=incident_id)
    if incident.acknowledged or incident.phase == Phase.CLOSED or incident.sla_due_at >= now:
        return False
    breach, created = SlaBreach.objects.get_or_create(
        incident=incident, due_at=incident.sla_due_at, defaults={"priority": incident.priority}
    )
    if not created:
        return False
    recipients = _recipients(incident)
    breach.recipients = recipients
    breach.save(update_fields=["recipients"])
    payload = sla_breached_payload(incident=incident, now=now)
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.SLA,
        actor=None,
        summary=f"SLA breached: not acknowledged within {payload['target']} ({payload['priority']}); "
        f"notified {len(recipients)} recipient(s)",
        data=payload | {"recipients": recipients},
        occurred_at=incident.sla_due_at,
    )
    if recipients:
        send_mail(
            subject=f"[Watchpost] SLA breached: {incident.reference} {incident.title}"[:200],
            message=_email_body(payload),
            from_email=None,  # DEFAULT_FROM_EMAIL
            recipient_list=recipients,
        )
    sla_breached_webhook_emit(incident=incident, payload=payload)
    return True


def sla_breached_payload(*, incident: Incident, now: datetime) -> dict[str, Any]:
    target = incident.sla_due_at - incident.detected_at
    return {
        "event": "sla.breached",
        "incident": incident.pk,
        "reference": incident.reference,
        "title": incident.title,
        "priority": str(Priority(incident.priority).label),
        "severity": incident.severity,
        "phase": incident.phase,
        "cluster": incident.cluster_name,
        "detected_at": incident.detected_at.isoformat(),
        "due_at": incident.sla_due_at.isoformat(),
        "target": short_duration(target),
        "overdue": short_duration(now - incident.sla_due_at),
        "url": reverse("incidents:detail", args=[incident.pk]),
    }


def _email_body(payload: dict[str, Any]) -> str:
    base = settings.WATCHPOST_BASE_URL.rstrip("/")
    return (
        f"{payload['reference']} {payload['title']}\n\n"
        f"Priority {payload['priority']}: acknowledgement target {payload['target']}.\n"
        f"Detected {payload['detected_at']}, due {payload['due_at']}, not acknowledged "
        f"(overdue {payload['overdue']}).\n"
        f"Cluster: {payload['cluster'] or '—'} · phase: {payload['phase']}\n\n"
        f"Open the case: {base}{payload['url']}\n"
    )


def sla_breached_webhook_emit(*, incident: Incident, payload: dict[str, Any]) -> None:
    """The `sla.breached` webhook event, handed over on commit of the notifying transaction (once per breach)."""
    outbound.sla_breached(incident=incident, breach=payload)
