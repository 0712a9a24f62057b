"""War-room notes: add and edit with full history; a stale edit is refused with both versions."""

from django.contrib.auth.models import User
from django.db import transaction

from incidents import outbound, permissions, timeline
from incidents.errors import NoteConflictError, ValidationError
from incidents.markdown import MAX_NOTE_CHARS
from incidents.models import Note, NoteRevision
from incidents.selectors import incident_queryset_for_user
from incidents.services.incidents import _locked


def _clean_body(body: str) -> str:
    body = body.strip()
    if not body:
        raise ValidationError("A note cannot be empty.")
    if len(body) > MAX_NOTE_CHARS:
        raise ValidationError(f"A note is limited to {MAX_NOTE_CHARS:,} characters.")
    return body


@transaction.atomic
def note_add(*, incident_id: int, actor: User, body: str) -> Note:
    permissions.require(permissions.can_work(actor), "Viewers cannot write notes.")
    body = _clean_body(body)
    incident = _locked(incident_id=incident_id, actor=actor)
    note = Note.objects.create(incident=incident, author=actor, updated_by=actor, body=body)
    NoteRevision.objects.create(note=note, version=1, body=body, editor=actor)
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.NOTE,
        actor=actor,
        summary=f"Note: {body.splitlines()[0][:200]}",
        data={"note": note.pk, "version": 1},
    )
    outbound.note_added(incident=incident, actor=actor, note=note)
    return note


@transaction.atomic
def note_edit(*, note_id: int, actor: User, body: str, base_version: int) -> Note:
    """`base_version` is the version the editor started from; anything else is a conflict."""
    permissions.require(permissions.can_work(actor), "Viewers cannot edit notes.")
    body = _clean_body(body)
    note = (
        Note.objects.select_for_update(of=("self",))
        .select_related("incident")
        .filter(incident__in=incident_queryset_for_user(actor))
        .get(pk=note_id)
    )
    if note.version != base_version:
        raise NoteConflictError(current_body=note.body, current_version=note.version, your_body=body)
    if note.body == body:
        return note
    note.body, note.version, note.updated_by = body, note.version + 1, actor
    note.save()
    NoteRevision.objects.create(note=note, version=note.version, body=body, editor=actor)
    timeline.event_add(
        incident=note.incident,
        kind=timeline.Kind.NOTE,
        actor=actor,
        summary=f"Note edited (v{note.version}): {body.splitlines()[0][:200]}",
        data={"note": note.pk, "version": note.version},
    )
    return note
