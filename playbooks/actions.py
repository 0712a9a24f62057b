"""Playbook step automation: the action registry and the ActionRun life cycle.

A responder requests a run (from a checklist step or the incident page); actions that change a
system need a manager's approval first (two-person rule, per playbook). A queued run is enqueued
on commit; the task claims the row with a conditional UPDATE that must change exactly one row
(healthchecks' `sendalerts` shape), calls the handler, and records the outcome. Every transition
writes one timeline row in the same transaction.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from incidents import outbound, permissions, timeline
from incidents.errors import IncidentClosedError, ValidationError
from incidents.models import Incident, Phase
from incidents.selectors import incident_queryset_for_user
from playbooks.models import ActionRun, ChecklistItem

Status = ActionRun.Status
Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    label: str
    # Dotted path to `handler(*, run: ActionRun) -> dict`: resolved lazily, so an action whose
    # integration is not installed shows as "not configured" instead of breaking the page.
    handler: str
    needs_approval: bool = False


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec("rbac.inspect", "Inspect RBAC for anonymous access", "incidents.services.rbac.rbac_inspect_run"),
        ActionSpec(
            "rbac.remediate",
            "Remove anonymous access",
            "incidents.services.rbac.rbac_remediate_run",
            needs_approval=True,
        ),
        ActionSpec(
            "rbac.rollback",
            "Roll back a remediation",
            "incidents.services.rbac.rbac_rollback_run",
            needs_approval=True,
        ),
        ActionSpec("query.run", "Run an investigation query", "incidents.services.queries.query_run"),
    )
}


def action_spec(name: str) -> ActionSpec:
    try:
        return ACTIONS[name]
    except KeyError:
        raise ValidationError(f"Unknown action {name!r}.") from None


def action_handler(name: str) -> Handler | None:
    """The handler, or None when its module is not there (the step falls back to manual work)."""
    try:
        return import_string(action_spec(name).handler)  # type: ignore[no-any-return]
    except ImportError:
        return None


def approval_required(*, incident: Incident, spec: ActionSpec) -> bool:
    return spec.needs_approval and bool(incident.playbook.document.get("two_person_rule", True))


def _open_incident(*, incident_id: int, actor: User) -> Incident:
    incident = incident_queryset_for_user(actor).select_related("playbook").get(pk=incident_id)
    if incident.phase == Phase.CLOSED:
        raise IncidentClosedError(f"{incident.reference} is closed; reopen it to run actions.")
    return incident


def _event(run: ActionRun, *, actor: User | None, verb: str, extra: str = "") -> None:
    spec = ACTIONS.get(run.action)
    label = spec.label if spec else run.action
    timeline.event_add(
        incident=run.incident,
        kind=timeline.Kind.ACTION,
        actor=actor,
        summary=f"{label} (run #{run.pk}) {verb}" + (f": {extra}" if extra else ""),
        data={"run": run.pk, "action": run.action, "status": run.status} | ({"detail": extra} if extra else {}),
    )


def _enqueue(run: ActionRun) -> None:
    from playbooks.tasks import action_run_task  # the task module imports this one

    run_id = run.pk
    transaction.on_commit(lambda: action_run_task.delay(run_id))


@transaction.atomic
def action_run_request(
    *,
    incident_id: int,
    action: str,
    actor: User,
    params: dict[str, Any] | None = None,
    item_id: int | None = None,
    parent_id: int | None = None,
) -> ActionRun:
    spec = action_spec(action)
    permissions.require(permissions.can_work(actor), "Viewers cannot launch actions.")
    incident = _open_incident(incident_id=incident_id, actor=actor)
    if action_handler(action) is None:
        raise ValidationError(f"{spec.label}: automation is not configured here; follow the manual steps.")
    item = ChecklistItem.objects.get(pk=item_id, incident=incident) if item_id else None
    parent = ActionRun.objects.get(pk=parent_id, incident=incident) if parent_id else None
    proposed = approval_required(incident=incident, spec=spec)
    run = ActionRun.objects.create(
        incident=incident,
        checklist_item=item,
        action=action,
        params=params or {},
        parent=parent,
        requested_by=actor,
        status=Status.PROPOSED if proposed else Status.QUEUED,
    )
    _event(run, actor=actor, verb="proposed, awaiting a manager's approval" if proposed else "requested")
    if not proposed:
        _enqueue(run)
    return run


def _locked_run(*, run_id: int, actor: User) -> ActionRun:
    return (
        ActionRun.objects.select_for_update(of=("self",))
        .select_related("incident", "incident__playbook")
        .filter(incident__in=incident_queryset_for_user(actor))
        .get(pk=run_id)
    )


@transaction.atomic
def action_run_approve(*, run_id: int, actor: User) -> ActionRun:
    run = _locked_run(run_id=run_id, actor=actor)
    permissions.require(permissions.can_manage(actor), "Only a manager can approve an action.")
    if run.status != Status.PROPOSED:
        return run  # a second click, or somebody else decided first
    if run.requested_by_id == actor.pk:
        raise ValidationError("Two-person rule: the proposer cannot approve their own action.")
    if run.incident.phase == Phase.CLOSED:
        raise IncidentClosedError(f"{run.incident.reference} is closed; reopen it to run actions.")
    run.status, run.approved_by, run.approved_at = Status.QUEUED, actor, timezone.now()
    run.save(update_fields=["status", "approved_by", "approved_at"])
    _event(run, actor=actor, verb="approved")
    _enqueue(run)
    return run


@transaction.atomic
def action_run_reject(*, run_id: int, actor: User, reason: str = "") -> ActionRun:
    run = _locked_run(run_id=run_id, actor=actor)
    # The proposer may withdraw; otherwise rejecting is a manager's call.
    permissions.require(
        permissions.can_manage(actor) or run.requested_by_id == actor.pk, "Only a manager can reject an action."
    )
    if run.status != Status.PROPOSED:
        return run
    run.status, run.error, run.finished_at = Status.REJECTED, reason.strip(), timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    _event(run, actor=actor, verb="rejected", extra=run.error)
    return run


@transaction.atomic
def action_run_cancel(*, run_id: int, actor: User) -> ActionRun:
    """Cancel a run that has not started; ask a running one to stop (its handler checks the flag)."""
    run = _locked_run(run_id=run_id, actor=actor)
    permissions.require(permissions.can_work(actor), "Viewers cannot cancel actions.")
    if run.status in (Status.PROPOSED, Status.QUEUED):
        run.status, run.finished_at = Status.CANCELLED, timezone.now()
        run.save(update_fields=["status", "finished_at"])
        _event(run, actor=actor, verb="cancelled")
    elif run.status == Status.RUNNING and not run.cancel_requested:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        _event(run, actor=actor, verb="cancellation requested")
    return run


def action_run_claim(*, run_id: int) -> ActionRun | None:
    """Take the run for this worker, or None when it is not ours to run.

    A queued run is claimed; so is a running one whose claim is older than the task hard time
    limit (its worker died: acks_late gave the message back, or the sweep re-queued it).
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    claimed = ActionRun.objects.filter(
        Q(status=Status.QUEUED) | Q(status=Status.RUNNING, claimed_at__lt=stale), pk=run_id
    ).update(status=Status.RUNNING, claimed_at=now, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    return ActionRun.objects.select_related("incident", "incident__playbook", "checklist_item").get(pk=run_id)


@transaction.atomic
def _settle(*, run_id: int, status: str, result: dict[str, Any] | None = None, error: str = "") -> ActionRun | None:
    run = ActionRun.objects.select_for_update().select_related("incident").filter(pk=run_id).first()
    if run is None or run.status != Status.RUNNING:
        return None  # somebody else settled it (a duplicate delivery): nothing to write twice
    run.status, run.finished_at, run.error = status, timezone.now(), error[:4000]
    if result is not None:
        run.result = result
    run.save(update_fields=["status", "finished_at", "error", "result"])
    verb = {Status.SUCCEEDED: "succeeded", Status.FAILED: "failed", Status.CANCELLED: "cancelled"}[Status(status)]
    _event(run, actor=None, verb=verb, extra=error or str(run.result.get("summary", "")))
    if status == Status.SUCCEEDED and run.action in REMEDIATIONS:
        outbound.remediation_applied(
            incident=run.incident,
            actor=None,
            summary=str(run.result.get("summary", "")),
            details={"run": run.pk, "action": run.action, "approved_by": run.approved_by_id},
        )
    return run


# Actions that change the cluster: their success is announced as `remediation.applied`.
REMEDIATIONS = frozenset({"rbac.remediate", "rbac.rollback"})


def action_run_finish(*, run_id: int, result: dict[str, Any]) -> ActionRun | None:
    status = Status.CANCELLED if result.get("cancelled") else Status.SUCCEEDED
    return _settle(run_id=run_id, status=status, result=result)


def action_run_fail(*, run_id: int, error: str) -> ActionRun | None:
    return _settle(run_id=run_id, status=Status.FAILED, error=error)


def action_run_requeue(*, run_id: int, error: str) -> None:
    """Give a running run back to the queue before a retry, so the retried task can claim it."""
    ActionRun.objects.filter(pk=run_id, status=Status.RUNNING).update(status=Status.QUEUED, error=error[:4000])


def action_run_progress(*, run_id: int, progress: dict[str, Any]) -> bool:
    """Store live progress; returns whether a cancel was requested (handlers poll this)."""
    ActionRun.objects.filter(pk=run_id, status=Status.RUNNING).update(progress=progress)
    return bool(ActionRun.objects.filter(pk=run_id, cancel_requested=True).exists())


def action_runs_requeue_stuck() -> list[int]:
    """Runs whose worker vanished past the hard limit: give them back to the queue (beat)."""
    stale = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    stuck = list(
        ActionRun.objects.filter(
            Q(status=Status.RUNNING, claimed_at__lt=stale)
            | Q(status=Status.QUEUED, created_at__lt=stale, claimed_at__isnull=True)
        ).values_list("pk", flat=True)
    )
    ActionRun.objects.filter(pk__in=stuck, status=Status.RUNNING).update(status=Status.QUEUED)
    return stuck
