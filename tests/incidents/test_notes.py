"""War-room notes: history of every version, stale saves refused with both versions."""

import pytest

from incidents.errors import NoteConflictError, ValidationError
from incidents.markdown import MAX_NOTE_CHARS
from incidents.models import Incident, Note, NoteRevision, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.services import incident_set_restricted, note_add, note_edit

Kind = TimelineEvent.Kind


def _history(note: Note) -> list[tuple[int, str]]:
    return list(NoteRevision.objects.filter(note=note).order_by("version").values_list("version", "body"))


def test_add_note_stores_version_one_its_revision_and_an_event(incident, responder, events) -> None:
    note = note_add(incident_id=incident.pk, actor=responder, body="  Pod `api-7f` exec'd from 10.0.0.5\nmore  ")

    stored = Note.objects.get(pk=note.pk)
    assert stored.body == "Pod `api-7f` exec'd from 10.0.0.5\nmore"
    assert stored.version == 1
    assert stored.author == responder
    assert _history(stored) == [(1, stored.body)]
    (event,) = events(incident, Kind.NOTE)
    assert event.actor == responder
    assert event.data == {"note": note.pk, "version": 1}
    assert event.summary == "Note: Pod `api-7f` exec'd from 10.0.0.5"


@pytest.mark.parametrize("body", ["", "   \n ", "x" * (MAX_NOTE_CHARS + 1)], ids=["empty", "blank", "too-long"])
def test_add_invalid_note_is_refused(incident, responder, events, body) -> None:
    with pytest.raises(ValidationError):
        note_add(incident_id=incident.pk, actor=responder, body=body)

    assert not Note.objects.exists()
    assert events(incident, Kind.NOTE) == []


def test_edit_from_current_version_adds_a_version_and_keeps_history(
    incident, responder, other_responder, events
) -> None:
    # given
    note = note_add(incident_id=incident.pk, actor=responder, body="first")

    # when
    note_edit(note_id=note.pk, actor=other_responder, body="second", base_version=1)
    note_edit(note_id=note.pk, actor=responder, body="third", base_version=2)

    # then
    stored = Note.objects.get(pk=note.pk)
    assert (stored.body, stored.version, stored.updated_by) == ("third", 3, responder)
    assert stored.author == responder
    assert _history(stored) == [(1, "first"), (2, "second"), (3, "third")]
    assert list(
        NoteRevision.objects.filter(note=note).order_by("version").values_list("editor__username", flat=True)
    ) == [
        "responder",
        "responder2",
        "responder",
    ]
    assert [event.data["version"] for event in events(incident, Kind.NOTE)] == [1, 2, 3]


def test_saving_the_same_body_writes_no_version_and_no_event(incident, responder, events) -> None:
    note = note_add(incident_id=incident.pk, actor=responder, body="same")
    before = len(events(incident))

    note_edit(note_id=note.pk, actor=responder, body="same", base_version=1)

    assert Note.objects.get(pk=note.pk).version == 1
    assert _history(note) == [(1, "same")]
    assert len(events(incident)) == before


def test_second_editor_from_the_same_base_gets_a_conflict_with_both_bodies(
    incident, responder, other_responder, events
) -> None:
    # given: both editors opened version 1
    note = note_add(incident_id=incident.pk, actor=responder, body="Timeline so far: exec at 10:02")
    note_edit(note_id=note.pk, actor=responder, body="Timeline so far: exec at 10:02, shell at 10:03", base_version=1)
    before = len(events(incident))

    # when: the second editor saves on the same base
    with pytest.raises(NoteConflictError) as caught:
        note_edit(
            note_id=note.pk, actor=other_responder, body="Timeline so far: exec at 10:02 from VPN", base_version=1
        )

    # then: both versions are handed back, and nothing is overwritten
    conflict = caught.value
    assert conflict.current_body == "Timeline so far: exec at 10:02, shell at 10:03"
    assert conflict.current_version == 2
    assert conflict.your_body == "Timeline so far: exec at 10:02 from VPN"
    stored = Note.objects.get(pk=note.pk)
    assert (stored.body, stored.version, stored.updated_by) == (conflict.current_body, 2, responder)
    assert _history(note) == [
        (1, "Timeline so far: exec at 10:02"),
        (2, "Timeline so far: exec at 10:02, shell at 10:03"),
    ]
    assert len(events(incident)) == before


def test_after_a_conflict_the_merged_text_saves_on_the_new_base(incident, responder, other_responder) -> None:
    # given
    note = note_add(incident_id=incident.pk, actor=responder, body="v1")
    note_edit(note_id=note.pk, actor=responder, body="v2 by A", base_version=1)
    with pytest.raises(NoteConflictError) as caught:
        note_edit(note_id=note.pk, actor=other_responder, body="v2 by B", base_version=1)

    # when
    merged = f"{caught.value.current_body}\n{caught.value.your_body}"
    note_edit(note_id=note.pk, actor=other_responder, body=merged, base_version=caught.value.current_version)

    # then
    assert _history(note) == [(1, "v1"), (2, "v2 by A"), (3, "v2 by A\nv2 by B")]


def test_future_base_version_is_a_conflict_too(incident, responder) -> None:
    note = note_add(incident_id=incident.pk, actor=responder, body="v1")

    with pytest.raises(NoteConflictError):
        note_edit(note_id=note.pk, actor=responder, body="v?", base_version=7)

    assert _history(note) == [(1, "v1")]


def test_viewer_cannot_write_or_edit_notes(incident, responder, viewer) -> None:
    note = note_add(incident_id=incident.pk, actor=responder, body="v1")

    with pytest.raises(PermissionDeniedError):
        note_add(incident_id=incident.pk, actor=viewer, body="viewer note")
    with pytest.raises(PermissionDeniedError):
        note_edit(note_id=note.pk, actor=viewer, body="viewer edit", base_version=1)

    assert Note.objects.count() == 1
    assert _history(note) == [(1, "v1")]


def test_note_on_a_restricted_incident_is_out_of_reach_for_others(
    incident, manager, responder, other_responder
) -> None:
    # given
    note = note_add(incident_id=incident.pk, actor=responder, body="v1")
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)

    # when / then
    with pytest.raises(Note.DoesNotExist):
        note_edit(note_id=note.pk, actor=other_responder, body="sneaky", base_version=1)
    with pytest.raises(Incident.DoesNotExist):
        note_add(incident_id=incident.pk, actor=other_responder, body="sneaky")
    assert _history(note) == [(1, "v1")]
    assert Note.objects.count() == 1
