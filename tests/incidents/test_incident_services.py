"""Incident services: open, update, assign, restrict, idempotent open, analyst events."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection

from incidents.errors import IncidentClosedError, ValidationError
from incidents.models import Incident, Phase, Priority, Resolution, Severity, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.selectors import incident_get_for_user
from incidents.services import (
    analyst_event_add,
    incident_assign,
    incident_open,
    incident_open_idempotent,
    incident_set_restricted,
    incident_update,
)
from playbooks.models import ChecklistItem, PlaybookStep
from tests.conftest import PLAYBOOK_STEPS, build_playbook
from tests.factories import PlaybookStepFactory

Kind = TimelineEvent.Kind


# --- open -------------------------------------------------------------------------------------------


def test_open_creates_the_checklist_from_the_pinned_playbook(playbook, responder, events) -> None:
    # when
    incident = incident_open(title="  Crypto miner pod  ", playbook=playbook, actor=responder, priority=Priority.P2)

    # then
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.title == "Crypto miner pod"
    assert stored.phase == Phase.NEW
    assert stored.playbook == playbook
    assert stored.acknowledged is False
    assert stored.sla_due_at == stored.detected_at + timedelta(minutes=settings.WATCHPOST_ACK_TARGET_MINUTES[2])
    items = list(ChecklistItem.objects.filter(incident=incident).select_related("step").order_by("position"))
    assert [item.step.step_id for item in items] == [step_id for step_id, *_ in PLAYBOOK_STEPS]
    assert {item.step.playbook_id for item in items} == {playbook.pk}
    assert {item.status for item in items} == {ChecklistItem.Status.TODO}
    assert [item.position for item in items] == [item.step.position for item in items]
    (created,) = events(incident)
    assert created.kind == Kind.CREATED
    assert created.actor == responder
    assert created.data == {"playbook": playbook.slug, "playbook_version": 1}


def test_later_playbook_version_does_not_change_an_open_incidents_checklist(incident, playbook, responder) -> None:
    # given: version 2 of the same playbook, with one step renamed away and one added
    v2 = build_playbook(slug=playbook.slug, version=2)
    v2.steps.filter(step_id="p3-improve").update(step_id="p3-lessons")
    PlaybookStepFactory(playbook=v2, step_id="p4-report", part=4, position=99)
    before = list(
        ChecklistItem.objects.filter(incident=incident).values_list("step_id", flat=True).order_by("position")
    )

    # when: a new case is opened on the new version
    newer = incident_open(title="Another exec", playbook=v2, actor=responder)

    # then: the open case still points at version 1 and its steps
    incident.refresh_from_db()
    assert incident.playbook == playbook
    after = list(ChecklistItem.objects.filter(incident=incident).values_list("step_id", flat=True).order_by("position"))
    assert after == before
    assert set(PlaybookStep.objects.filter(pk__in=after).values_list("playbook_id", flat=True)) == {playbook.pk}
    newer_steps = list(
        ChecklistItem.objects.filter(incident=newer).order_by("position").values_list("step__step_id", flat=True)
    )
    assert newer_steps[-2:] == ["p3-lessons", "p4-report"]


def test_viewer_cannot_open_an_incident(playbook, viewer) -> None:
    with pytest.raises(PermissionDeniedError):
        incident_open(title="Nope", playbook=playbook, actor=viewer)

    assert not Incident.objects.exists()


def test_open_without_title_is_refused(playbook, responder) -> None:
    with pytest.raises(ValidationError):
        incident_open(title="   ", playbook=playbook, actor=responder)

    assert not Incident.objects.exists()
    assert not TimelineEvent.objects.exists()


# --- update -----------------------------------------------------------------------------------------


def test_update_writes_one_field_event_per_changed_field(incident, responder, events) -> None:
    # given
    before = len(events(incident))

    # when: the summary is given unchanged, two fields really change
    incident_update(
        incident_id=incident.pk,
        actor=responder,
        title="Exec into payments pod",
        summary=incident.summary,
        severity=Severity.HIGH,
    )

    # then
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.title == "Exec into payments pod"
    assert stored.severity == Severity.HIGH
    new_events = events(incident)[before:]
    assert [event.kind for event in new_events] == [Kind.FIELD, Kind.FIELD]
    assert {event.data["field"] for event in new_events} == {"title", "severity"}
    severity_event = next(event for event in new_events if event.data["field"] == "severity")
    assert severity_event.data == {"field": "severity", "from": "Medium", "to": "High"}


def test_update_with_unchanged_values_writes_no_event(incident, responder, events) -> None:
    before = len(events(incident))

    incident_update(incident_id=incident.pk, actor=responder, title=incident.title, severity=incident.severity)

    assert len(events(incident)) == before


@pytest.mark.parametrize(
    "changes",
    [{"severity": 9}, {"priority": 0}, {"resolution": "maybe"}, {"title": "  "}, {"phase": Phase.CLOSED}],
    ids=["severity", "priority", "resolution", "title", "not-editable"],
)
def test_update_with_invalid_value_changes_nothing(incident, responder, events, changes) -> None:
    before = len(events(incident))
    original = Incident.objects.values().get(pk=incident.pk)

    with pytest.raises(ValidationError):
        incident_update(incident_id=incident.pk, actor=responder, **changes)

    current = Incident.objects.values().get(pk=incident.pk)
    assert current == original
    assert len(events(incident)) == before


def test_update_rolls_back_every_field_when_a_later_one_is_invalid(incident, responder, events) -> None:
    before = len(events(incident))

    with pytest.raises(ValidationError):
        incident_update(incident_id=incident.pk, actor=responder, title="Changed", severity=42)

    assert Incident.objects.get(pk=incident.pk).title == incident.title
    assert len(events(incident)) == before


def test_resolution_can_be_set(incident, responder, events) -> None:
    incident_update(incident_id=incident.pk, actor=responder, resolution=Resolution.FALSE_POSITIVE)

    assert Incident.objects.get(pk=incident.pk).resolution == Resolution.FALSE_POSITIVE
    assert events(incident, Kind.FIELD)[-1].data == {
        "field": "resolution",
        "from": "Unresolved",
        "to": "False positive",
    }


def test_priority_change_moves_sla_due_at(playbook, responder) -> None:
    # given: a P3 case detected at a known time
    detected = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    incident = incident_open(
        title="Exec", playbook=playbook, actor=responder, priority=Priority.P3, detected_at=detected
    )
    assert incident.sla_due_at == detected + timedelta(minutes=settings.WATCHPOST_ACK_TARGET_MINUTES[3])

    # when
    incident_update(incident_id=incident.pk, actor=responder, priority=Priority.P1)

    # then: the deadline is recomputed from detection, not from now
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.priority == Priority.P1
    assert stored.sla_due_at == detected + timedelta(minutes=settings.WATCHPOST_ACK_TARGET_MINUTES[1])


def test_severity_change_leaves_sla_due_at_alone(incident, responder) -> None:
    due = incident.sla_due_at

    incident_update(incident_id=incident.pk, actor=responder, severity=Severity.CRITICAL)

    assert Incident.objects.get(pk=incident.pk).sla_due_at == due


# --- assign -----------------------------------------------------------------------------------------


def test_manager_assigns_commander_and_assignees(incident, manager, responder, other_responder, events) -> None:
    # when
    incident_assign(
        incident_id=incident.pk, actor=manager, commander_id=responder.pk, assignee_ids=[other_responder.pk]
    )

    # then
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.commander == responder
    assert list(stored.assignees.all()) == [other_responder]
    (event,) = events(incident, Kind.ASSIGNMENT)
    assert event.actor == manager
    assert event.data == {"commander": {"from": None, "to": "responder"}, "assignees": ["responder2"]}


def test_repeating_the_same_assignment_writes_no_event(incident, manager, responder, events) -> None:
    incident_assign(incident_id=incident.pk, actor=manager, commander_id=responder.pk, assignee_ids=[responder.pk])
    before = len(events(incident))

    incident_assign(incident_id=incident.pk, actor=manager, commander_id=responder.pk, assignee_ids=[responder.pk])

    assert len(events(incident)) == before


def test_responder_cannot_assign(incident, responder, events) -> None:
    before = len(events(incident))

    with pytest.raises(PermissionDeniedError):
        incident_assign(incident_id=incident.pk, actor=responder, commander_id=responder.pk, assignee_ids=[])

    assert Incident.objects.get(pk=incident.pk).commander is None
    assert len(events(incident)) == before


def test_assign_unknown_commander_is_refused(incident, manager) -> None:
    with pytest.raises(ValidationError):
        incident_assign(incident_id=incident.pk, actor=manager, commander_id=999_999, assignee_ids=[])

    assert Incident.objects.get(pk=incident.pk).commander is None


def test_assign_on_closed_incident_is_refused(incident, manager, responder) -> None:
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.CLOSED)

    with pytest.raises(IncidentClosedError):
        incident_assign(incident_id=incident.pk, actor=manager, commander_id=responder.pk, assignee_ids=[])

    assert Incident.objects.get(pk=incident.pk).commander is None


# --- restricted visibility --------------------------------------------------------------------------


def test_restricted_incident_is_hidden_from_responders_not_on_it(
    incident, manager, responder, other_responder, events
) -> None:
    # when
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)

    # then: not visible and not writable for a responder who is not on the case
    assert Incident.objects.get(pk=incident.pk).restricted is True
    assert events(incident, Kind.FIELD)[-1].data == {"field": "restricted", "from": False, "to": True}
    with pytest.raises(Incident.DoesNotExist):
        incident_get_for_user(user=other_responder, incident_id=incident.pk)
    with pytest.raises(Incident.DoesNotExist):
        incident_update(incident_id=incident.pk, actor=other_responder, title="Peek")
    assert Incident.objects.get(pk=incident.pk).title == incident.title
    assert incident_get_for_user(user=manager, incident_id=incident.pk) == incident


def test_assignee_and_commander_see_the_restricted_incident(incident, manager, responder, other_responder) -> None:
    # given
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)

    # when
    incident_assign(
        incident_id=incident.pk, actor=manager, commander_id=responder.pk, assignee_ids=[other_responder.pk]
    )

    # then
    assert incident_get_for_user(user=responder, incident_id=incident.pk) == incident
    assert incident_get_for_user(user=other_responder, incident_id=incident.pk) == incident
    incident_update(incident_id=incident.pk, actor=other_responder, title="Worked by the assignee")
    assert Incident.objects.get(pk=incident.pk).title == "Worked by the assignee"


def test_restricting_twice_writes_one_event(incident, manager, events) -> None:
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)

    assert len([e for e in events(incident, Kind.FIELD) if e.data["field"] == "restricted"]) == 1


def test_responder_cannot_restrict(incident, responder) -> None:
    with pytest.raises(PermissionDeniedError):
        incident_set_restricted(incident_id=incident.pk, actor=responder, restricted=True)

    assert Incident.objects.get(pk=incident.pk).restricted is False


# --- idempotent open --------------------------------------------------------------------------------


def test_idempotent_open_returns_the_same_incident_for_the_same_reference(playbook) -> None:
    # when
    first, first_created = incident_open_idempotent(
        source="guardduty", external_ref="gd-123", title="Finding", playbook=playbook, actor=None
    )
    second, second_created = incident_open_idempotent(
        source="guardduty", external_ref="gd-123", title="Finding again", playbook=playbook, actor=None
    )

    # then
    assert (first_created, second_created) == (True, False)
    assert first.pk == second.pk
    assert Incident.objects.count() == 1
    assert TimelineEvent.objects.filter(kind=Kind.CREATED).count() == 1
    assert ChecklistItem.objects.filter(incident=first).count() == len(PLAYBOOK_STEPS)


def test_same_reference_from_another_source_is_another_incident(playbook) -> None:
    a, _ = incident_open_idempotent(source="guardduty", external_ref="X-1", title="A", playbook=playbook, actor=None)
    b, created = incident_open_idempotent(source="jira", external_ref="X-1", title="B", playbook=playbook, actor=None)

    assert created is True
    assert a.pk != b.pk


def test_idempotent_open_without_a_reference_never_returns_an_unrelated_incident(incident, playbook) -> None:
    """An empty reference identifies nothing (the unique constraint ignores it): refuse it or open a new case."""
    # given: an ordinary manual case, which has source "manual" and no external reference
    assert (incident.source, incident.external_ref) == ("manual", "")

    # when
    try:
        result, created = incident_open_idempotent(
            source="manual", external_ref="", title="Different report", playbook=playbook, actor=None
        )
    except ValidationError:
        return

    # then
    assert result.pk != incident.pk
    assert created is True
    assert Incident.objects.get(pk=result.pk).title == "Different report"


@pytest.mark.django_db(transaction=True)
def test_concurrent_idempotent_opens_create_one_incident() -> None:
    # given
    playbook = build_playbook(slug="concurrent-open")
    barrier = threading.Barrier(2)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def open_once() -> None:
        try:
            barrier.wait(timeout=10)
            incident, created = incident_open_idempotent(
                source="guardduty", external_ref="gd-race", title="Race", playbook=playbook, actor=None
            )
            results.append((incident.pk, created))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=open_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then
    assert errors == []
    assert len(results) == 2
    assert len({pk for pk, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, True]
    assert Incident.objects.filter(source="guardduty", external_ref="gd-race").count() == 1
    assert TimelineEvent.objects.filter(kind=Kind.CREATED).count() == 1
    assert ChecklistItem.objects.count() == len(PLAYBOOK_STEPS)


# --- analyst events ---------------------------------------------------------------------------------


def test_analyst_event_keeps_its_own_time(incident, responder, events) -> None:
    occurred = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    analyst_event_add(incident_id=incident.pk, actor=responder, occurred_at=occurred, summary=" First call ")

    (event,) = events(incident, Kind.ANALYST)
    assert event.occurred_at == occurred
    assert event.summary == "First call"
    assert event.actor == responder
    assert event.recorded_at > occurred


def test_analyst_event_without_timezone_is_refused(incident, responder, events) -> None:
    with pytest.raises(ValidationError):
        analyst_event_add(incident_id=incident.pk, actor=responder, occurred_at=datetime(2025, 1, 2), summary="x")

    assert events(incident, Kind.ANALYST) == []
