"""The post-incident review (seed Part 5): lessons learned and follow-up actions with owners and dates.

Open to the case's responders and managers in any phase, a closed case included: the review often
happens after closing. Each change writes its timeline row in the same transaction.
"""

from datetime import date

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from incidents import permissions, timeline
from incidents.errors import ValidationError
from incidents.models import FollowUpAction, LessonsLearned
from incidents.services.incidents import _locked

LESSON_FIELDS = {
    "what_happened": "what happened",
    "root_cause": "root cause",
    "what_worked": "what worked",
    "what_did_not": "what did not work",
}
MAX_LESSON_CHARS = 20_000


@transaction.atomic
def lessons_save(*, incident_id: int, actor: User, **fields: str) -> LessonsLearned:
    """Save the lessons-learned text; one timeline row naming the sections that changed."""
    permissions.require(permissions.can_work(actor), "Viewers cannot edit the post-incident review.")
    unknown = set(fields) - set(LESSON_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown review field(s): {', '.join(sorted(unknown))}.")
    cleaned = {name: value.strip() for name, value in fields.items()}
    for name, value in cleaned.items():
        if len(value) > MAX_LESSON_CHARS:
            raise ValidationError(f"“{LESSON_FIELDS[name]}” is limited to {MAX_LESSON_CHARS:,} characters.")
    incident = _locked(incident_id=incident_id, actor=actor)
    lessons, created = LessonsLearned.objects.select_for_update().get_or_create(incident=incident)
    changed = [name for name, value in cleaned.items() if getattr(lessons, name) != value]
    if not changed:
        return lessons
    for name in changed:
        setattr(lessons, name, cleaned[name])
    lessons.version = lessons.version if created else lessons.version + 1
    lessons.updated_by = actor
    lessons.save()
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.REVIEW,
        actor=actor,
        summary=f"Lessons learned {'written' if created else 'updated'}: "
        + ", ".join(LESSON_FIELDS[name] for name in changed),
        data={"lessons": lessons.pk, "version": lessons.version, "changed": changed},
    )
    return lessons


@transaction.atomic
def follow_up_add(
    *, incident_id: int, actor: User, description: str, owner_id: int | None, due_on: date | None
) -> FollowUpAction:
    permissions.require(permissions.can_work(actor), "Viewers cannot add follow-up actions.")
    description = description.strip()
    if not description:
        raise ValidationError("Describe the follow-up action.")
    owner = User.objects.filter(pk=owner_id, is_active=True).first() if owner_id else None
    if owner_id and owner is None:
        raise ValidationError("Unknown owner.")
    incident = _locked(incident_id=incident_id, actor=actor)
    action = FollowUpAction.objects.create(
        incident=incident, description=description[:500], owner=owner, due_on=due_on, created_by=actor
    )
    who = owner.get_username() if owner else "no owner"
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.REVIEW,
        actor=actor,
        summary=f"Follow-up action: {action.description} ({who}, due {due_on.isoformat() if due_on else 'no date'})",
        data={"follow_up": action.pk, "owner": owner.get_username() if owner else None, "due_on": str(due_on or "")},
    )
    return action


@transaction.atomic
def follow_up_set_done(*, incident_id: int, follow_up_id: int, actor: User, done: bool) -> FollowUpAction:
    permissions.require(permissions.can_work(actor), "Viewers cannot change follow-up actions.")
    incident = _locked(incident_id=incident_id, actor=actor)
    action = FollowUpAction.objects.select_for_update().get(pk=follow_up_id, incident=incident)
    if (action.done_at is not None) == done:
        return action
    action.done_at = timezone.now() if done else None
    action.save(update_fields=["done_at"])
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.REVIEW,
        actor=actor,
        summary=f"Follow-up action {'done' if done else 'reopened'}: {action.description}",
        data={"follow_up": action.pk, "done": done},
    )
    return action
