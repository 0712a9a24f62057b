"""The close gate: no close with open mandatory steps unless a manager overrides with a reason."""

import pytest
from django.utils import timezone

from incidents.errors import CloseGateError, ValidationError
from incidents.models import Incident, Phase, Resolution, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.services import incident_change_phase
from playbooks.models import ChecklistItem
from playbooks.services import checklist_item_complete, checklist_item_decide, checklist_item_set_status

Status = ChecklistItem.Status
MANDATORY = ["p1-confirm", "p1-decide", "p2-isolate", "p2-revoke", "p3-restore", "p3-improve"]


@pytest.fixture
def ready_to_close(incident) -> Incident:
    """In post-incident with a resolution; the checklist is left as opened (everything to do)."""
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.POST_INCIDENT, resolution=Resolution.TRUE_POSITIVE)
    incident.refresh_from_db()
    return incident


def _set(incident: Incident, step_ids: list[str], status: str) -> None:
    ChecklistItem.objects.filter(incident=incident, step__step_id__in=step_ids).update(status=status)


def _phase(incident: Incident) -> str:
    return Incident.objects.values_list("phase", flat=True).get(pk=incident.pk)


def test_open_mandatory_items_block_a_responder_close(ready_to_close, responder, events) -> None:
    # given: everything done but two mandatory steps
    _set(ready_to_close, MANDATORY[:-2] + ["p1-optional"], Status.DONE)
    before = len(events(ready_to_close))

    # when
    with pytest.raises(CloseGateError) as caught:
        incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.CLOSED)

    # then
    assert len(caught.value.open_items) == 2
    assert any("P3 restore" in item for item in caught.value.open_items)
    assert any("P3 improve" in item for item in caught.value.open_items)
    stored = Incident.objects.get(pk=ready_to_close.pk)
    assert stored.phase == Phase.POST_INCIDENT
    assert stored.closed_at is None
    assert len(events(ready_to_close)) == before


def test_open_optional_item_does_not_block_close(ready_to_close, responder) -> None:
    # given: every mandatory step done, the optional one still to do
    _set(ready_to_close, MANDATORY, Status.DONE)

    # when
    incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.CLOSED)

    # then
    stored = Incident.objects.get(pk=ready_to_close.pk)
    assert stored.phase == Phase.CLOSED
    assert stored.closed_at is not None
    assert stored.close_override_reason == ""
    assert stored.close_override_by is None


def test_skipped_and_not_applicable_items_do_not_block_close(ready_to_close, responder, checklist_item) -> None:
    # given: part 2 made N/A by the decision, one step skipped with a reason, the rest done
    Incident.objects.filter(pk=ready_to_close.pk).update(phase=Phase.ANALYSIS)
    checklist_item_decide(
        item_id=checklist_item(ready_to_close, "p1-decide").pk, actor=responder, option_id="authorized"
    )
    checklist_item_set_status(
        item_id=checklist_item(ready_to_close, "p3-improve").pk,
        actor=responder,
        status=Status.SKIPPED,
        comment="Lessons learned handled in the quarterly review",
    )
    for step_id in ["p1-confirm", "p3-restore"]:
        checklist_item_complete(item_id=checklist_item(ready_to_close, step_id).pk, actor=responder)
    Incident.objects.filter(pk=ready_to_close.pk).update(phase=Phase.POST_INCIDENT)
    assert checklist_item(ready_to_close, "p2-isolate").status == Status.NOT_APPLICABLE

    # when
    incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.CLOSED)

    # then
    assert _phase(ready_to_close) == Phase.CLOSED


def test_manager_override_with_reason_closes_and_records_reason_overrider_and_event(
    ready_to_close, manager, events
) -> None:
    # given: nothing on the checklist done
    before = len(events(ready_to_close))

    # when
    incident_change_phase(
        incident_id=ready_to_close.pk,
        actor=manager,
        to=Phase.CLOSED,
        override_reason="  Customer terminated the cluster; remaining steps moot.  ",
    )

    # then
    stored = Incident.objects.get(pk=ready_to_close.pk)
    assert stored.phase == Phase.CLOSED
    assert stored.closed_at is not None
    assert stored.close_override_reason == "Customer terminated the cluster; remaining steps moot."
    assert stored.close_override_by == manager
    new_events = events(ready_to_close)[before:]
    assert all(event.actor == manager for event in new_events)
    assert [event.data.get("override_reason") for event in new_events] == [
        "Customer terminated the cluster; remaining steps moot."
    ]


def test_override_close_writes_exactly_one_timeline_event_carrying_the_override(
    ready_to_close, manager, events
) -> None:
    """One change, one timeline row: the close and its override are the same change."""
    before = len(events(ready_to_close))

    incident_change_phase(
        incident_id=ready_to_close.pk, actor=manager, to=Phase.CLOSED, override_reason="Cluster decommissioned"
    )

    new_events = events(ready_to_close)[before:]
    assert len(new_events) == 1, [event.summary for event in new_events]
    assert new_events[0].kind == TimelineEvent.Kind.PHASE
    assert new_events[0].data["to"] == Phase.CLOSED
    assert "Cluster decommissioned" in str(new_events[0].data)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_manager_override_with_empty_reason_is_refused(ready_to_close, manager, events, reason) -> None:
    before = len(events(ready_to_close))

    with pytest.raises(CloseGateError):
        incident_change_phase(incident_id=ready_to_close.pk, actor=manager, to=Phase.CLOSED, override_reason=reason)

    stored = Incident.objects.get(pk=ready_to_close.pk)
    assert stored.phase == Phase.POST_INCIDENT
    assert stored.close_override_reason == ""
    assert stored.close_override_by is None
    assert len(events(ready_to_close)) == before


def test_responder_override_is_refused_and_records_nothing(ready_to_close, responder, events) -> None:
    before = len(events(ready_to_close))

    with pytest.raises(PermissionDeniedError):
        incident_change_phase(
            incident_id=ready_to_close.pk, actor=responder, to=Phase.CLOSED, override_reason="I am sure"
        )

    stored = Incident.objects.get(pk=ready_to_close.pk)
    assert stored.phase == Phase.POST_INCIDENT
    assert stored.close_override_reason == ""
    assert stored.close_override_by is None
    assert len(events(ready_to_close)) == before


@pytest.mark.parametrize("override_reason", ["", "Manager says close"])
def test_close_without_resolution_is_refused(incident, manager, events, override_reason) -> None:
    # given: every step done, but no resolution
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.POST_INCIDENT)
    ChecklistItem.objects.filter(incident=incident).update(status=Status.DONE)
    before = len(events(incident))

    # when
    with pytest.raises(ValidationError):
        incident_change_phase(incident_id=incident.pk, actor=manager, to=Phase.CLOSED, override_reason=override_reason)

    # then
    assert _phase(incident) == Phase.POST_INCIDENT
    assert len(events(incident)) == before


def test_reopen_moves_to_analysis_and_stamps_reopened_at(ready_to_close, responder, events) -> None:
    # given: a closed case
    _set(ready_to_close, MANDATORY, Status.DONE)
    incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.CLOSED)
    closed_at = Incident.objects.get(pk=ready_to_close.pk).closed_at
    before = timezone.now()

    # when
    incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.ANALYSIS, reason="New evidence")

    # then
    stored = Incident.objects.get(pk=ready_to_close.pk)
    assert stored.phase == Phase.ANALYSIS
    assert stored.reopened_at is not None and stored.reopened_at >= before
    assert stored.analysis_at >= before
    assert stored.closed_at == closed_at  # history of the earlier close is kept
    last = events(ready_to_close, TimelineEvent.Kind.PHASE)[-1]
    assert last.data == {"from": Phase.CLOSED, "to": Phase.ANALYSIS, "reason": "New evidence"}


def test_clean_close_after_reopen_does_not_keep_an_earlier_override(ready_to_close, manager, responder) -> None:
    """The override fields describe the close that stands, not one that was undone by a reopen."""
    # given: closed by override, reopened, then every mandatory step finished
    incident_change_phase(incident_id=ready_to_close.pk, actor=manager, to=Phase.CLOSED, override_reason="Moot")
    incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.ANALYSIS)
    _set(ready_to_close, MANDATORY, Status.DONE)
    incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.POST_INCIDENT)

    # when: closed again, this time through the gate
    incident_change_phase(incident_id=ready_to_close.pk, actor=responder, to=Phase.CLOSED)

    # then
    stored = Incident.objects.get(pk=ready_to_close.pk)
    assert stored.phase == Phase.CLOSED
    assert stored.close_override_reason == ""
    assert stored.close_override_by is None


def test_close_can_set_the_resolution_in_the_same_step(incident, responder, events) -> None:
    # given: every step done, no resolution yet
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.POST_INCIDENT)
    ChecklistItem.objects.filter(incident=incident).update(status=Status.DONE)

    # when
    incident_change_phase(
        incident_id=incident.pk, actor=responder, to=Phase.CLOSED, resolution=Resolution.FALSE_POSITIVE
    )

    # then
    stored = Incident.objects.get(pk=incident.pk)
    assert (stored.phase, stored.resolution) == (Phase.CLOSED, Resolution.FALSE_POSITIVE)
    assert events(incident, TimelineEvent.Kind.PHASE)[-1].data["to"] == Phase.CLOSED


def test_refused_close_does_not_keep_the_resolution_it_carried(incident, responder, events) -> None:
    # given: mandatory steps still open, no resolution
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.POST_INCIDENT)
    before = len(events(incident))

    # when
    with pytest.raises(CloseGateError):
        incident_change_phase(
            incident_id=incident.pk, actor=responder, to=Phase.CLOSED, resolution=Resolution.TRUE_POSITIVE
        )

    # then: the whole change rolled back, its field event too
    stored = Incident.objects.get(pk=incident.pk)
    assert (stored.phase, stored.resolution) == (Phase.POST_INCIDENT, Resolution.NONE)
    assert len(events(incident)) == before
