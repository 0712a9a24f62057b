"""Each role × each service operation: allowed (and the change is made) or refused (and nothing changes).

viewer reads only; responder works cases but cannot assign, restrict or override the close gate; manager,
admin (group) and superuser can do everything. A user in no role group can do nothing and sees nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from incidents.models import CustodyEvent, Evidence, Incident, Note, Phase, Resolution, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.selectors import IncidentFilters, incident_get_for_user, incident_list_for_user
from incidents.services import (
    analyst_event_add,
    evidence_add,
    evidence_open_verified,
    incident_assign,
    incident_change_phase,
    incident_open,
    incident_set_restricted,
    incident_update,
    note_add,
    note_edit,
)
from playbooks.models import ChecklistItem
from playbooks.services import checklist_item_complete, checklist_item_decide

ROLES = ["viewer", "responder", "manager", "admin", "superuser", "outsider"]
WORKERS = {"responder", "manager", "admin", "superuser"}
MANAGERS = {"manager", "admin", "superuser"}
READERS = {"viewer", *WORKERS}


@dataclass
class Case:
    incident: Incident
    closing: Incident  # in post-incident, resolved, checklist untouched: closing needs an override
    note: Note
    evidence: Evidence
    colleague: object


@pytest.fixture
def case(settings, tmp_path: Path, playbook, responder, other_responder) -> Case:
    settings.MEDIA_ROOT = tmp_path
    incident = incident_open(title="Matrix case", playbook=playbook, actor=responder)
    closing = incident_open(title="Closing case", playbook=playbook, actor=responder)
    Incident.objects.filter(pk=closing.pk).update(phase=Phase.POST_INCIDENT, resolution=Resolution.TRUE_POSITIVE)
    note = note_add(incident_id=incident.pk, actor=responder, body="v1")
    upload = SimpleUploadedFile("log.txt", b"evidence bytes")
    evidence = evidence_add(incident_id=incident.pk, actor=responder, upload=upload)
    return Case(incident=incident, closing=closing, note=note, evidence=evidence, colleague=other_responder)


def _item(case: Case, step_id: str) -> ChecklistItem:
    return ChecklistItem.objects.get(incident=case.incident, step__step_id=step_id)


def _current(case: Case) -> Incident:
    return Incident.objects.get(pk=case.incident.pk)


@dataclass(frozen=True)
class Operation:
    run: Callable[[object, Case], object]
    happened: Callable[[Case], bool]


WRITE_OPERATIONS: dict[str, tuple[Operation, set[str]]] = {
    "open": (
        Operation(
            run=lambda actor, c: incident_open(title="New one", playbook=c.incident.playbook, actor=actor),
            happened=lambda c: Incident.objects.filter(title="New one").exists(),
        ),
        WORKERS,
    ),
    "update": (
        Operation(
            run=lambda actor, c: incident_update(incident_id=c.incident.pk, actor=actor, title="Renamed"),
            happened=lambda c: _current(c).title == "Renamed",
        ),
        WORKERS,
    ),
    "change-phase": (
        Operation(
            run=lambda actor, c: incident_change_phase(incident_id=c.incident.pk, actor=actor, to=Phase.ACKNOWLEDGED),
            happened=lambda c: _current(c).phase == Phase.ACKNOWLEDGED,
        ),
        WORKERS,
    ),
    "analyst-event": (
        Operation(
            run=lambda actor, c: analyst_event_add(
                incident_id=c.incident.pk, actor=actor, occurred_at=datetime(2025, 1, 1, tzinfo=UTC), summary="seen"
            ),
            happened=lambda c: TimelineEvent.objects.filter(kind=TimelineEvent.Kind.ANALYST).exists(),
        ),
        WORKERS,
    ),
    "note-add": (
        Operation(
            run=lambda actor, c: note_add(incident_id=c.incident.pk, actor=actor, body="second note"),
            happened=lambda c: Note.objects.filter(body="second note").exists(),
        ),
        WORKERS,
    ),
    "note-edit": (
        Operation(
            run=lambda actor, c: note_edit(note_id=c.note.pk, actor=actor, body="v2", base_version=1),
            happened=lambda c: Note.objects.get(pk=c.note.pk).version == 2,
        ),
        WORKERS,
    ),
    "evidence-add": (
        Operation(
            run=lambda actor, c: evidence_add(
                incident_id=c.incident.pk, actor=actor, upload=SimpleUploadedFile("more.txt", b"more")
            ),
            happened=lambda c: Evidence.objects.filter(original_name="more.txt").exists(),
        ),
        WORKERS,
    ),
    "checklist-tick": (
        Operation(
            run=lambda actor, c: checklist_item_complete(item_id=_item(c, "p1-confirm").pk, actor=actor),
            happened=lambda c: _item(c, "p1-confirm").status == ChecklistItem.Status.DONE,
        ),
        WORKERS,
    ),
    "checklist-decide": (
        Operation(
            run=lambda actor, c: checklist_item_decide(
                item_id=_item(c, "p1-decide").pk, actor=actor, option_id="authorized"
            ),
            happened=lambda c: _item(c, "p1-decide").decision == "authorized",
        ),
        WORKERS,
    ),
    "assign": (
        Operation(
            run=lambda actor, c: incident_assign(
                incident_id=c.incident.pk, actor=actor, commander_id=c.colleague.pk, assignee_ids=[]
            ),
            happened=lambda c: _current(c).commander_id == c.colleague.pk,
        ),
        MANAGERS,
    ),
    "restrict": (
        Operation(
            run=lambda actor, c: incident_set_restricted(incident_id=c.incident.pk, actor=actor, restricted=True),
            happened=lambda c: _current(c).restricted,
        ),
        MANAGERS,
    ),
    "override-close-gate": (
        Operation(
            run=lambda actor, c: incident_change_phase(
                incident_id=c.closing.pk, actor=actor, to=Phase.CLOSED, override_reason="Environment destroyed"
            ),
            happened=lambda c: Incident.objects.get(pk=c.closing.pk).phase == Phase.CLOSED,
        ),
        MANAGERS,
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation_name", WRITE_OPERATIONS.keys())
def test_write_operation_by_role(request, case, role, operation_name) -> None:
    # given
    operation, allowed_roles = WRITE_OPERATIONS[operation_name]
    actor = request.getfixturevalue(role)
    events_before = TimelineEvent.objects.count()

    # when / then
    if role in allowed_roles:
        operation.run(actor, case)
        assert operation.happened(case)
        assert TimelineEvent.objects.count() > events_before
        assert TimelineEvent.objects.latest("id").actor == actor
    else:
        with pytest.raises(PermissionDeniedError):
            operation.run(actor, case)
        assert not operation.happened(case)
        assert TimelineEvent.objects.count() == events_before


@pytest.mark.parametrize("role", ROLES)
def test_read_operations_by_role(request, case, role) -> None:
    # given
    actor = request.getfixturevalue(role)

    # when
    listed = incident_list_for_user(user=actor, filters=IncidentFilters(phase="all"), cursor=None, size=50)

    # then
    if role in READERS:
        assert {i.pk for i in listed.items} == {case.incident.pk, case.closing.pk}
        assert incident_get_for_user(user=actor, incident_id=case.incident.pk).pk == case.incident.pk
        _, handle = evidence_open_verified(evidence_id=case.evidence.pk, actor=actor, source_address=None)
        handle.close()
        assert CustodyEvent.objects.filter(action=CustodyEvent.Action.DOWNLOADED, actor=actor).count() == 1
    else:
        assert listed.items == []
        with pytest.raises(Incident.DoesNotExist):
            incident_get_for_user(user=actor, incident_id=case.incident.pk)
        with pytest.raises(Evidence.DoesNotExist):
            evidence_open_verified(evidence_id=case.evidence.pk, actor=actor, source_address=None)
        assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.DOWNLOADED).exists()


def test_responder_override_attempt_leaves_the_gate_closed(case, responder) -> None:
    with pytest.raises(PermissionDeniedError):
        incident_change_phase(incident_id=case.closing.pk, actor=responder, to=Phase.CLOSED, override_reason="Trust me")

    closing = Incident.objects.get(pk=case.closing.pk)
    assert (closing.phase, closing.close_override_reason, closing.close_override_by) == (Phase.POST_INCIDENT, "", None)
