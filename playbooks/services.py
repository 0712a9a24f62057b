"""Checklist writes: tick, untick, skip, mark not applicable, and decide.

A double click or two responders ticking at once give one change and one timeline row: the item
row is locked, and a request that changes nothing returns before writing.
"""

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents import outbound, permissions, timeline
from incidents.errors import IncidentClosedError, ValidationError
from incidents.models import Phase
from incidents.selectors import incident_queryset_for_user
from playbooks.models import ChecklistItem, PlaybookStep

Status = ChecklistItem.Status


def _locked_item(*, item_id: int, actor: User) -> ChecklistItem:
    permissions.require(permissions.can_work(actor), "Viewers cannot work the checklist.")
    item = (
        ChecklistItem.objects.select_for_update(of=("self",))
        .select_related("step", "incident")
        .filter(incident__in=incident_queryset_for_user(actor))
        .get(pk=item_id)
    )
    if item.incident.phase == Phase.CLOSED:
        raise IncidentClosedError(f"{item.incident.reference} is closed; reopen it to change the checklist.")
    return item


@transaction.atomic
def checklist_item_set_status(*, item_id: int, actor: User, status: str, comment: str = "") -> ChecklistItem:
    if status not in Status.values:
        raise ValidationError(f"Unknown checklist status {status!r}.")
    item = _locked_item(item_id=item_id, actor=actor)
    if item.step.kind == PlaybookStep.Kind.DECISION and status == Status.DONE:
        raise ValidationError("A decision step is completed by choosing one of its options.")
    if status == Status.SKIPPED and not comment.strip():
        raise ValidationError("Say why the step is skipped.")
    comment = comment.strip()
    if item.status == status and (not comment or comment == item.comment):
        return item
    old = item.status
    item.status = status
    item.comment = comment or item.comment
    item.done_by = None if status == Status.TODO else actor
    item.done_at = None if status == Status.TODO else timezone.now()
    item.na_by = None
    if item.decision:  # leaving the decision undoes what it made not applicable
        _undo_decision(item)
        item.decision = ""
    item.save()
    timeline.event_add(
        incident=item.incident,
        kind=timeline.Kind.CHECKLIST,
        actor=actor,
        summary=f"{item.step.number} {item.step.title}: {Status(status).label.lower()}"
        + (f" ({item.comment})" if comment else ""),
        data={"item": item.pk, "step": item.step.step_id, "from": old, "to": status, "comment": comment},
    )
    if status in (Status.DONE, Status.SKIPPED):
        _completed(item, actor)
    return item


def _completed(item: ChecklistItem, actor: User) -> None:
    outbound.checklist_item_completed(
        incident=item.incident,
        actor=actor,
        step_id=item.step.step_id,
        title=item.step.title,
        status=item.status,
        comment=item.comment,
    )


def checklist_item_complete(*, item_id: int, actor: User, comment: str = "") -> ChecklistItem:
    return checklist_item_set_status(item_id=item_id, actor=actor, status=Status.DONE, comment=comment)


def _targets(item: ChecklistItem, refs: list[str]) -> Q:
    parts = [int(ref.removeprefix("part-")) for ref in refs if ref.startswith("part-")]
    steps = [ref for ref in refs if not ref.startswith("part-")]
    return (Q(step__part__in=parts) | Q(step__step_id__in=steps)) & ~Q(pk=item.pk)


def _undo_decision(item: ChecklistItem) -> None:
    """Give back what the previous choice made not applicable (items nobody has touched since)."""
    ChecklistItem.objects.filter(incident=item.incident, na_by=item, status=Status.NOT_APPLICABLE).update(
        status=Status.TODO, na_by=None, done_by=None, done_at=None
    )


@transaction.atomic
def checklist_item_decide(*, item_id: int, actor: User, option_id: str, comment: str = "") -> ChecklistItem:
    item = _locked_item(item_id=item_id, actor=actor)
    if item.step.kind != PlaybookStep.Kind.DECISION:
        raise ValidationError("This step is not a decision.")
    options = {option["id"]: option for option in item.step.options}
    if option_id not in options:
        raise ValidationError(f"Unknown option {option_id!r}; choose one of {', '.join(options)}.")
    if item.decision == option_id and item.status == Status.DONE:
        return item
    option = options[option_id]
    _undo_decision(item)
    now = timezone.now()
    skipped = ChecklistItem.objects.filter(
        _targets(item, option.get("not_applicable", [])), incident=item.incident, status=Status.TODO
    ).update(status=Status.NOT_APPLICABLE, na_by=item, done_by=actor, done_at=now)
    item.decision, item.status, item.done_by, item.done_at = option_id, Status.DONE, actor, now
    item.comment = comment.strip() or item.comment
    item.save()
    timeline.event_add(
        incident=item.incident,
        kind=timeline.Kind.DECISION,
        actor=actor,
        summary=f"Decision at {item.step.number}: {option['label']} → {option['goto']}",
        data={
            "item": item.pk,
            "step": item.step.step_id,
            "option": option_id,
            "goto": option["goto"],
            "not_applicable": option.get("not_applicable", []),
            "items_made_not_applicable": skipped,
            "comment": comment,
        },
    )
    _completed(item, actor)
    return item
