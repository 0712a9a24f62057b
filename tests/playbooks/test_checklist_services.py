"""Checklist writes: tick, untick, skip, decide. One change, one timeline row, however often it is clicked."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from incidents.errors import IncidentClosedError, ValidationError
from incidents.models import Incident, Phase, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.services import incident_open, incident_set_restricted
from playbooks.models import ChecklistItem
from playbooks.services import checklist_item_complete, checklist_item_decide, checklist_item_set_status
from tests.conftest import build_playbook
from tests.factories import UserFactory

Status = ChecklistItem.Status
Kind = TimelineEvent.Kind


def _statuses(incident: Incident) -> dict[str, str]:
    return dict(ChecklistItem.objects.filter(incident=incident).values_list("step__step_id", "status"))


# --- tick / untick / skip ---------------------------------------------------------------------------


def test_tick_marks_done_with_who_when_comment_and_one_event(incident, responder, checklist_item, events) -> None:
    # given
    item = checklist_item(incident, "p1-confirm")
    before = timezone.now()

    # when
    checklist_item_complete(item_id=item.pk, actor=responder, comment="  Audit log confirms exec  ")

    # then
    stored = checklist_item(incident, "p1-confirm")
    assert stored.status == Status.DONE
    assert stored.done_by == responder
    assert stored.done_at is not None and stored.done_at >= before
    assert stored.comment == "Audit log confirms exec"
    (event,) = events(incident, Kind.CHECKLIST)
    assert event.actor == responder
    assert event.data["item"] == item.pk
    assert (event.data["step"], event.data["from"], event.data["to"]) == ("p1-confirm", Status.TODO, Status.DONE)


def test_double_tick_writes_one_event(incident, responder, checklist_item, events) -> None:
    item = checklist_item(incident, "p1-confirm")

    checklist_item_complete(item_id=item.pk, actor=responder)
    first_done_at = checklist_item(incident, "p1-confirm").done_at
    checklist_item_complete(item_id=item.pk, actor=responder)

    assert checklist_item(incident, "p1-confirm").done_at == first_done_at
    assert len(events(incident, Kind.CHECKLIST)) == 1


@pytest.mark.parametrize("comment", ["Checked the audit log", "Checked the audit log\r\n"], ids=["plain", "textarea"])
def test_double_tick_with_the_same_comment_writes_one_event(incident, responder, checklist_item, events, comment):
    """A double click sends the same form twice, textarea line ending included."""
    item = checklist_item(incident, "p1-confirm")

    checklist_item_complete(item_id=item.pk, actor=responder, comment=comment)
    checklist_item_complete(item_id=item.pk, actor=responder, comment=comment)

    assert checklist_item(incident, "p1-confirm").comment == "Checked the audit log"
    assert len(events(incident, Kind.CHECKLIST)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_give_one_done_and_one_event(role_groups: None) -> None:
    # given: two responders about to tick the same step at the same moment
    alice = UserFactory(username="alice", role="responder")
    bob = UserFactory(username="bob", role="responder")
    incident = incident_open(title="Race", playbook=build_playbook(slug="tick-race"), actor=alice)
    item_id = ChecklistItem.objects.get(incident=incident, step__step_id="p1-confirm").pk
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def tick(user_id: int) -> None:
        try:
            actor = type(alice).objects.get(pk=user_id)
            barrier.wait(timeout=10)
            checklist_item_complete(item_id=item_id, actor=actor)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=tick, args=(user.pk,)) for user in (alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then
    assert errors == []
    item = ChecklistItem.objects.get(pk=item_id)
    assert item.status == Status.DONE
    assert item.done_by_id in {alice.pk, bob.pk}
    assert ChecklistItem.objects.filter(incident=incident, status=Status.DONE).count() == 1
    checklist_events = TimelineEvent.objects.filter(incident=incident, kind=Kind.CHECKLIST)
    assert checklist_events.count() == 1
    assert checklist_events.get().actor_id == item.done_by_id


def test_untick_returns_the_item_to_todo_and_clears_who_and_when(incident, responder, checklist_item, events) -> None:
    item = checklist_item(incident, "p1-confirm")
    checklist_item_complete(item_id=item.pk, actor=responder)

    checklist_item_set_status(item_id=item.pk, actor=responder, status=Status.TODO)

    stored = checklist_item(incident, "p1-confirm")
    assert (stored.status, stored.done_by, stored.done_at) == (Status.TODO, None, None)
    assert [e.data["to"] for e in events(incident, Kind.CHECKLIST)] == [Status.DONE, Status.TODO]


@pytest.mark.parametrize("comment", ["", "   "])
def test_skip_needs_a_comment(incident, responder, checklist_item, events, comment) -> None:
    item = checklist_item(incident, "p2-isolate")

    with pytest.raises(ValidationError):
        checklist_item_set_status(item_id=item.pk, actor=responder, status=Status.SKIPPED, comment=comment)

    assert checklist_item(incident, "p2-isolate").status == Status.TODO
    assert events(incident, Kind.CHECKLIST) == []


def test_skip_with_a_comment_records_it(incident, responder, checklist_item, events) -> None:
    item = checklist_item(incident, "p2-isolate")

    checklist_item_set_status(item_id=item.pk, actor=responder, status=Status.SKIPPED, comment="Node already gone")

    stored = checklist_item(incident, "p2-isolate")
    assert (stored.status, stored.comment, stored.done_by) == (Status.SKIPPED, "Node already gone", responder)
    (event,) = events(incident, Kind.CHECKLIST)
    assert event.data["comment"] == "Node already gone"


def test_unknown_status_is_refused(incident, responder, checklist_item) -> None:
    with pytest.raises(ValidationError):
        checklist_item_set_status(item_id=checklist_item(incident, "p1-confirm").pk, actor=responder, status="maybe")

    assert checklist_item(incident, "p1-confirm").status == Status.TODO


def test_decision_step_cannot_just_be_ticked(incident, responder, checklist_item, events) -> None:
    with pytest.raises(ValidationError):
        checklist_item_complete(item_id=checklist_item(incident, "p1-decide").pk, actor=responder)

    assert checklist_item(incident, "p1-decide").status == Status.TODO
    assert events(incident) == events(incident, Kind.CREATED)


# --- decisions --------------------------------------------------------------------------------------


def test_decision_marks_the_branch_not_taken_not_applicable(incident, responder, checklist_item, events) -> None:
    # given
    decision = checklist_item(incident, "p1-decide")

    # when
    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="authorized", comment="Change ticket CHG-7")

    # then
    stored = checklist_item(incident, "p1-decide")
    assert (stored.status, stored.decision, stored.done_by, stored.comment) == (
        Status.DONE,
        "authorized",
        responder,
        "Change ticket CHG-7",
    )
    assert _statuses(incident) == {
        "p1-confirm": Status.TODO,
        "p1-optional": Status.TODO,
        "p1-decide": Status.DONE,
        "p2-isolate": Status.NOT_APPLICABLE,
        "p2-revoke": Status.NOT_APPLICABLE,
        "p3-restore": Status.TODO,
        "p3-improve": Status.TODO,
    }
    assert set(
        ChecklistItem.objects.filter(incident=incident, na_by=stored).values_list("step__step_id", flat=True)
    ) == {
        "p2-isolate",
        "p2-revoke",
    }
    (event,) = events(incident, Kind.DECISION)
    assert event.data["option"] == "authorized"
    assert event.data["goto"] == "part-3"
    assert event.data["items_made_not_applicable"] == 2
    assert len(events(incident)) == 2  # CREATED + DECISION: one change, one row


def test_changing_the_decision_gives_back_what_the_old_choice_made_not_applicable(
    incident, responder, checklist_item, events
) -> None:
    # given
    decision = checklist_item(incident, "p1-decide")
    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="authorized")

    # when
    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="unauthorized")

    # then
    statuses = _statuses(incident)
    assert statuses["p2-isolate"] == statuses["p2-revoke"] == Status.TODO
    assert statuses["p3-improve"] == Status.NOT_APPLICABLE
    assert statuses["p3-restore"] == Status.TODO
    restored = checklist_item(incident, "p2-isolate")
    assert (restored.na_by, restored.done_by, restored.done_at) == (None, None, None)
    assert checklist_item(incident, "p1-decide").decision == "unauthorized"
    assert [e.data["option"] for e in events(incident, Kind.DECISION)] == ["authorized", "unauthorized"]


def test_choosing_the_same_option_again_writes_nothing(incident, responder, checklist_item, events) -> None:
    decision = checklist_item(incident, "p1-decide")
    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="authorized")
    before = len(events(incident))

    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="authorized")

    assert len(events(incident)) == before


def test_decision_leaves_work_already_done_on_the_other_branch(incident, responder, checklist_item) -> None:
    # given: part 2 partly worked before the decision
    checklist_item_complete(item_id=checklist_item(incident, "p2-isolate").pk, actor=responder)

    # when
    checklist_item_decide(item_id=checklist_item(incident, "p1-decide").pk, actor=responder, option_id="authorized")

    # then
    assert _statuses(incident)["p2-isolate"] == Status.DONE
    assert _statuses(incident)["p2-revoke"] == Status.NOT_APPLICABLE


def test_changing_the_decision_keeps_later_work_on_an_item(incident, responder, checklist_item) -> None:
    # given: the decision made p2-revoke N/A, then someone did it anyway
    decision = checklist_item(incident, "p1-decide")
    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="authorized")
    checklist_item_complete(item_id=checklist_item(incident, "p2-revoke").pk, actor=responder)

    # when
    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="unauthorized")

    # then
    assert _statuses(incident)["p2-revoke"] == Status.DONE
    assert _statuses(incident)["p2-isolate"] == Status.TODO


def test_unticking_the_decision_gives_back_its_not_applicable_items(incident, responder, checklist_item) -> None:
    decision = checklist_item(incident, "p1-decide")
    checklist_item_decide(item_id=decision.pk, actor=responder, option_id="authorized")

    checklist_item_set_status(item_id=decision.pk, actor=responder, status=Status.TODO)

    assert set(_statuses(incident).values()) == {Status.TODO}
    assert checklist_item(incident, "p1-decide").decision == ""


def test_unknown_option_is_refused(incident, responder, checklist_item, events) -> None:
    with pytest.raises(ValidationError):
        checklist_item_decide(item_id=checklist_item(incident, "p1-decide").pk, actor=responder, option_id="maybe")

    assert set(_statuses(incident).values()) == {Status.TODO}
    assert events(incident, Kind.DECISION) == []


def test_deciding_on_a_task_step_is_refused(incident, responder, checklist_item) -> None:
    with pytest.raises(ValidationError):
        checklist_item_decide(
            item_id=checklist_item(incident, "p1-confirm").pk, actor=responder, option_id="authorized"
        )

    assert set(_statuses(incident).values()) == {Status.TODO}


# --- who and when -----------------------------------------------------------------------------------


def test_ticking_on_a_closed_incident_is_refused(incident, responder, checklist_item, events) -> None:
    # given
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.CLOSED)
    before = len(events(incident))

    # when / then
    with pytest.raises(IncidentClosedError):
        checklist_item_complete(item_id=checklist_item(incident, "p1-confirm").pk, actor=responder)
    with pytest.raises(IncidentClosedError):
        checklist_item_decide(item_id=checklist_item(incident, "p1-decide").pk, actor=responder, option_id="authorized")
    assert set(_statuses(incident).values()) == {Status.TODO}
    assert len(events(incident)) == before


def test_viewer_cannot_tick(incident, viewer, checklist_item, events) -> None:
    with pytest.raises(PermissionDeniedError):
        checklist_item_complete(item_id=checklist_item(incident, "p1-confirm").pk, actor=viewer)

    assert checklist_item(incident, "p1-confirm").status == Status.TODO
    assert events(incident, Kind.CHECKLIST) == []


def test_items_of_a_restricted_incident_are_out_of_reach(incident, manager, other_responder, checklist_item) -> None:
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)

    with pytest.raises(ChecklistItem.DoesNotExist):
        checklist_item_complete(item_id=checklist_item(incident, "p1-confirm").pk, actor=other_responder)

    assert checklist_item(incident, "p1-confirm").status == Status.TODO
