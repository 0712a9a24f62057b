"""The phase state machine, through `incident_change_phase`, over the full 8×8 matrix."""

import itertools

import pytest
from django.utils import timezone

from incidents.errors import InvalidTransitionError
from incidents.models import Incident, Phase, Resolution, TimelineEvent
from incidents.services import incident_change_phase
from playbooks.models import ChecklistItem

ALLOWED = {
    (Phase.NEW, Phase.ACKNOWLEDGED),
    (Phase.ACKNOWLEDGED, Phase.ANALYSIS),
    (Phase.ANALYSIS, Phase.CONTAINMENT),
    (Phase.ANALYSIS, Phase.POST_INCIDENT),
    (Phase.CONTAINMENT, Phase.ERADICATION),
    (Phase.ERADICATION, Phase.RECOVERY),
    (Phase.RECOVERY, Phase.POST_INCIDENT),
    (Phase.POST_INCIDENT, Phase.CLOSED),
    (Phase.CLOSED, Phase.ANALYSIS),
}
TIMESTAMP_FIELDS = [
    "acknowledged_at",
    "analysis_at",
    "containment_at",
    "eradication_at",
    "recovery_at",
    "post_incident_at",
    "closed_at",
    "reopened_at",
]
PAIRS = list(itertools.product(Phase.values, Phase.values))
FORBIDDEN = [(old, new) for old, new in PAIRS if old != new and (old, new) not in ALLOWED]


def _put_in_phase(incident: Incident, phase: str) -> None:
    """Arrange: the incident sits in `phase`, with the close gate satisfied so only the machine decides."""
    Incident.objects.filter(pk=incident.pk).update(phase=phase, resolution=Resolution.TRUE_POSITIVE)
    ChecklistItem.objects.filter(incident=incident).update(status=ChecklistItem.Status.DONE)


def _timestamps(incident_id: int) -> dict[str, object]:
    return dict(Incident.objects.filter(pk=incident_id).values(*TIMESTAMP_FIELDS).get())


def test_matrix_covers_every_pair() -> None:
    assert len(PAIRS) == 64
    assert len(ALLOWED) == 9
    assert len(FORBIDDEN) == 64 - 9 - 8


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_allowed_transition_moves_phase_stamps_time_and_writes_one_phase_event(
    incident, responder, events, old, new
) -> None:
    # given
    _put_in_phase(incident, old)
    before_events = len(events(incident))
    before = timezone.now()

    # when
    result = incident_change_phase(incident_id=incident.pk, actor=responder, to=new, reason="moving on")

    # then
    stored = Incident.objects.get(pk=incident.pk)
    assert result.phase == stored.phase == new
    stamp_field = f"{new}_at"
    assert getattr(stored, stamp_field) is not None
    assert getattr(stored, stamp_field) >= before
    if old == Phase.CLOSED:
        assert stored.reopened_at is not None and stored.reopened_at >= before
    else:
        assert stored.reopened_at is None
    new_events = events(incident)[before_events:]
    assert len(new_events) == 1
    (event,) = new_events
    assert event.kind == TimelineEvent.Kind.PHASE
    assert event.actor == responder
    assert event.data == {"from": old, "to": new, "reason": "moving on"}


@pytest.mark.parametrize(("old", "new"), FORBIDDEN)
def test_forbidden_transition_raises_and_writes_nothing(incident, responder, events, old, new) -> None:
    # given
    _put_in_phase(incident, old)
    before_events = len(events(incident))
    before_stamps = _timestamps(incident.pk)

    # when
    with pytest.raises(InvalidTransitionError):
        incident_change_phase(incident_id=incident.pk, actor=responder, to=new)

    # then
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.phase == old
    assert _timestamps(incident.pk) == before_stamps
    assert len(events(incident)) == before_events


@pytest.mark.parametrize("phase", Phase.values)
def test_moving_to_the_current_phase_changes_nothing(incident, responder, events, phase) -> None:
    # given
    _put_in_phase(incident, phase)
    before_events = len(events(incident))
    before_stamps = _timestamps(incident.pk)

    # when
    incident_change_phase(incident_id=incident.pk, actor=responder, to=phase)

    # then
    assert Incident.objects.get(pk=incident.pk).phase == phase
    assert _timestamps(incident.pk) == before_stamps
    assert len(events(incident)) == before_events


def test_unknown_phase_is_refused(incident, responder, events) -> None:
    with pytest.raises(InvalidTransitionError):
        incident_change_phase(incident_id=incident.pk, actor=responder, to="bogus")

    assert Incident.objects.get(pk=incident.pk).phase == Phase.NEW
    assert len(events(incident, TimelineEvent.Kind.PHASE)) == 0


def test_acknowledging_ends_the_wait_for_acknowledgement(incident, responder) -> None:
    assert incident.acknowledged is False

    incident_change_phase(incident_id=incident.pk, actor=responder, to=Phase.ACKNOWLEDGED)

    stored = Incident.objects.get(pk=incident.pk)
    assert stored.acknowledged is True
    assert stored.acknowledged_at is not None


def test_full_walk_through_the_services_stamps_every_phase_in_order(
    incident, responder, checklist_item, events
) -> None:
    # given: a worked case with a resolution and no open mandatory step
    ChecklistItem.objects.filter(incident=incident).update(status=ChecklistItem.Status.DONE)
    Incident.objects.filter(pk=incident.pk).update(resolution=Resolution.TRUE_POSITIVE)
    path = [
        Phase.ACKNOWLEDGED,
        Phase.ANALYSIS,
        Phase.CONTAINMENT,
        Phase.ERADICATION,
        Phase.RECOVERY,
        Phase.POST_INCIDENT,
        Phase.CLOSED,
    ]

    # when
    for phase in path:
        incident_change_phase(incident_id=incident.pk, actor=responder, to=phase)

    # then
    stored = Incident.objects.get(pk=incident.pk)
    stamps = [getattr(stored, f"{phase}_at") for phase in path]
    assert all(stamp is not None for stamp in stamps)
    assert stamps == sorted(stamps)
    assert [(e.data["from"], e.data["to"]) for e in events(incident, TimelineEvent.Kind.PHASE)] == list(
        zip([Phase.NEW, *path[:-1]], path, strict=True)
    )


def test_authorized_activity_skips_from_analysis_to_post_incident(incident, responder) -> None:
    # given
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.ANALYSIS)

    # when
    incident_change_phase(incident_id=incident.pk, actor=responder, to=Phase.POST_INCIDENT)

    # then
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.phase == Phase.POST_INCIDENT
    assert stored.post_incident_at is not None
    assert stored.containment_at is None and stored.eradication_at is None and stored.recovery_at is None
