"""Incident writes: open, phase changes with the close gate, field updates, assignment.

Each function locks the incident row, returns early when nothing changes, and writes its timeline
row in the same transaction (Zulip's `do_change_user_role` shape).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents import outbound, permissions, phases, timeline
from incidents.errors import CloseGateError, IncidentClosedError, InvalidTransitionError, ValidationError
from incidents.models import Incident, Phase, Priority, Resolution, Severity
from incidents.selectors import incident_queryset_for_user
from playbooks.checklists import checklist_materialise
from playbooks.models import ChecklistItem, Playbook


def sla_due_at(*, detected_at: datetime, priority: int) -> datetime:
    return detected_at + timedelta(minutes=settings.WATCHPOST_ACK_TARGET_MINUTES[priority])


def _locked(*, incident_id: int, actor: User | None) -> Incident:
    """The incident row, locked, and only if the actor may see it (system actors see everything)."""
    queryset = Incident.objects.all() if actor is None else incident_queryset_for_user(actor)
    return queryset.select_for_update(of=("self",)).select_related("playbook").get(pk=incident_id)


def _require_open(incident: Incident) -> None:
    if incident.phase == Phase.CLOSED:
        raise IncidentClosedError(f"{incident.reference} is closed; reopen it first.")


@transaction.atomic
def incident_open(
    *,
    title: str,
    playbook: Playbook,
    actor: User | None,
    severity: int = Severity.MEDIUM,
    priority: int = Priority.P3,
    summary: str = "",
    finding_type: str = "",
    cluster_name: str = "",
    account_id: str = "",
    region: str = "",
    source: str = "manual",
    external_ref: str = "",
    detected_at: datetime | None = None,
) -> Incident:
    """Open a case and make its checklist from the pinned playbook version."""
    if actor is not None:
        permissions.require(permissions.can_work(actor), "Only responders and managers open incidents.")
    if not title.strip():
        raise ValidationError("An incident needs a title.")
    detected_at = detected_at or timezone.now()
    incident = Incident.objects.create(
        title=title.strip()[:300],
        summary=summary,
        severity=severity,
        priority=priority,
        playbook=playbook,
        finding_type=finding_type,
        cluster_name=cluster_name,
        account_id=account_id,
        region=region,
        source=source,
        external_ref=external_ref,
        detected_at=detected_at,
        sla_due_at=sla_due_at(detected_at=detected_at, priority=priority),
    )
    checklist_materialise(incident_ids=[incident.pk])
    timeline.incident_created_event(incident=incident, actor=actor)
    outbound.incident_created(incident=incident, actor=actor)
    return incident


def incident_open_idempotent(*, source: str, external_ref: str, **fields: object) -> tuple[Incident, bool]:
    """Open once per (source, external reference); a repeat, even a concurrent one, gets the same case."""
    if not external_ref.strip():
        raise ValidationError("An idempotent open needs the external reference that identifies the case.")
    existing = Incident.objects.filter(source=source, external_ref=external_ref).first()
    if existing is not None:
        return existing, False
    try:
        return incident_open(source=source, external_ref=external_ref, **fields), True  # type: ignore[arg-type]
    except IntegrityError:
        # Lost the race against another request with the same reference: the unique constraint decided.
        return Incident.objects.get(source=source, external_ref=external_ref), False


def _open_mandatory_items(incident: Incident) -> list[str]:
    checklist_materialise(incident_ids=[incident.pk])  # an ingested case nobody opened has no rows yet
    items = incident.checklist.filter(step__mandatory=True, status=ChecklistItem.Status.TODO).select_related("step")
    return [f"{item.step.number} {item.step.title}" for item in items]


def _check_close_gate(*, incident: Incident, actor: User | None, override_reason: str) -> str:
    """Refuse to close over open mandatory steps unless a manager overrides; returns the override used."""
    if not incident.resolution:
        raise ValidationError("Set a resolution (true positive, authorized activity or false positive) before closing.")
    open_items = _open_mandatory_items(incident)
    # The override fields describe the close that stands now, not an earlier one.
    incident.close_override_reason, incident.close_override_by = "", None
    if not open_items:
        return ""
    if not override_reason.strip():
        raise CloseGateError(
            f"{len(open_items)} mandatory checklist item(s) are still open. "
            "Finish or skip them, or a manager may override with a written reason.",
            open_items,
        )
    permissions.require(
        actor is not None and permissions.can_manage(actor), "Only a manager can override the close gate."
    )
    incident.close_override_reason = override_reason.strip()
    incident.close_override_by = actor
    return incident.close_override_reason


@transaction.atomic
def incident_change_phase(
    *,
    incident_id: int,
    actor: User | None,
    to: str,
    reason: str = "",
    override_reason: str = "",
    resolution: str | None = None,
) -> Incident:
    """Move the case along the state machine. Closing may set the resolution in the same step."""
    if actor is not None:
        permissions.require(permissions.can_work(actor), "Viewers cannot change the phase.")
    if resolution:
        incident_update(incident_id=incident_id, actor=actor, resolution=resolution)
    incident = _locked(incident_id=incident_id, actor=actor)
    old = incident.phase
    if old == to:
        return incident
    if not phases.is_allowed(old, to):
        allowed = ", ".join(phases.allowed_next(old)) or "none"
        raise InvalidTransitionError(f"Cannot move from {old} to {to}; allowed next: {allowed}.")
    override = ""
    if to == Phase.CLOSED:
        override = _check_close_gate(incident=incident, actor=actor, override_reason=override_reason)
    now = timezone.now()
    if phases.is_reopen(old, to):
        incident.reopened_at = now
    if to in phases.PHASE_TIMESTAMP:
        setattr(incident, phases.PHASE_TIMESTAMP[to], now)
    if to == Phase.ACKNOWLEDGED:
        incident.acknowledged = True
    incident.phase = to
    incident.save()
    timeline.phase_changed_event(incident=incident, actor=actor, old=old, new=to, reason=reason, override=override)
    outbound.incident_phase_changed(incident=incident, actor=actor, old=old, new=to)
    return incident


EDITABLE_FIELDS = {"title", "summary", "severity", "priority", "resolution"}


def _clean_field(field: str, value: object) -> object:
    choices = {"severity": Severity.values, "priority": Priority.values, "resolution": Resolution.values}
    if field in choices and value not in choices[field]:  # type: ignore[operator]
        raise ValidationError(f"{value!r} is not a valid {field}.")
    if field == "title" and not str(value).strip():
        raise ValidationError("An incident needs a title.")
    return value


@transaction.atomic
def incident_update(*, incident_id: int, actor: User | None, **changes: object) -> Incident:
    """Change plain fields; one timeline row per field that really changed."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(sorted(unknown))} here.")
    if actor is not None:
        permissions.require(permissions.can_work(actor), "Viewers cannot edit incidents.")
    incident = _locked(incident_id=incident_id, actor=actor)
    changed = []
    for field, value in changes.items():
        value = _clean_field(field, value)
        old = getattr(incident, field)
        if old == value:
            continue
        setattr(incident, field, value)
        changed.append((field, old, value))
    if not changed:
        return incident
    if any(field == "priority" for field, _, _ in changed):
        incident.sla_due_at = sla_due_at(detected_at=incident.detected_at, priority=incident.priority)
    incident.save()
    for field, old, value in changed:
        timeline.field_changed_event(
            incident=incident, actor=actor, field=field, old=_label(field, old), new=_label(field, value)
        )
    outbound.incident_updated(
        incident=incident, actor=actor, changes={f: {"from": old, "to": new} for f, old, new in changed}
    )
    return incident


def _label(field: str, value: object) -> object:
    labels = {"severity": Severity, "priority": Priority, "resolution": Resolution}
    if field in labels and value in labels[field].values:
        return str(labels[field](value).label)
    return value


@transaction.atomic
def incident_assign(
    *,
    incident_id: int,
    actor: User,
    commander_id: int | None,
    assignee_ids: list[int],
) -> Incident:
    permissions.require(permissions.can_manage(actor), "Only managers assign incidents.")
    incident = _locked(incident_id=incident_id, actor=actor)
    _require_open(incident)
    people = {u.pk: u for u in User.objects.filter(pk__in=[*assignee_ids, *([commander_id] if commander_id else [])])}
    if commander_id and commander_id not in people:
        raise ValidationError("Unknown commander.")
    old_assignees = set(incident.assignees.values_list("pk", flat=True))
    new_assignees = {pk for pk in assignee_ids if pk in people}
    if incident.commander_id == commander_id and old_assignees == new_assignees:
        return incident
    old_commander = incident.commander.get_username() if incident.commander else None
    incident.commander = people.get(commander_id) if commander_id else None
    incident.save()
    incident.assignees.set(new_assignees)
    names = sorted(people[pk].get_username() for pk in new_assignees)
    new_commander = incident.commander.get_username() if incident.commander else None
    timeline.assignment_event(
        incident=incident,
        actor=actor,
        summary=f"Commander {new_commander or '—'}; assignees {', '.join(names) or '—'}",
        data={"commander": {"from": old_commander, "to": new_commander}, "assignees": names},
    )
    outbound.incident_updated(
        incident=incident,
        actor=actor,
        changes={"commander": {"from": old_commander, "to": new_commander}, "assignees": {"to": names}},
    )
    return incident


@transaction.atomic
def incident_set_restricted(*, incident_id: int, actor: User, restricted: bool) -> Incident:
    permissions.require(permissions.can_manage(actor), "Only managers restrict incidents.")
    incident = _locked(incident_id=incident_id, actor=actor)
    if incident.restricted == restricted:
        return incident
    incident.restricted = restricted
    incident.save()
    timeline.field_changed_event(incident=incident, actor=actor, field="restricted", old=not restricted, new=restricted)
    return incident


@transaction.atomic
def analyst_event_add(*, incident_id: int, actor: User, occurred_at: datetime, summary: str, source: str = "") -> None:
    """An event the analyst records with its own time (e.g. "first anonymous call at …" from a query
    result). The time is stored in UTC; the zone it was given in and the source are kept with it."""
    permissions.require(permissions.can_work(actor), "Viewers cannot add timeline events.")
    if timezone.is_naive(occurred_at):
        raise ValidationError("Give the event time with a timezone (UTC offset).")
    if not summary.strip():
        raise ValidationError("Describe the event.")
    incident = _locked(incident_id=incident_id, actor=actor)
    zone = str(occurred_at.tzinfo)
    text = summary.strip()
    if occurred_at.utcoffset() or zone not in ("UTC", "UTC+00:00"):
        text += f" (given as {occurred_at:%Y-%m-%d %H:%M:%S} {zone})"
    if source.strip():
        text += f" [source: {source.strip()[:200]}]"
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.ANALYST,
        actor=actor,
        summary=text,
        occurred_at=occurred_at,
        data={"given_as": occurred_at.isoformat(), "zone": zone, "source": source.strip()[:200]},
    )
