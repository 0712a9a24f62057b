"""Dashboard selectors: counts per phase × severity, SLA per priority with reasons, response times, slow steps."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.metrics import (
    Period,
    open_by_cluster,
    open_matrix,
    response_times_by,
    response_times_overall,
    response_trend,
    sla_breaches,
    sla_by_priority,
    step_durations,
)
from incidents.models import Incident, Phase, Priority, Severity
from incidents.services import incident_open, incident_set_restricted
from incidents.services.sla import sla_breaches_sweep
from playbooks.models import ChecklistItem

pytestmark = pytest.mark.django_db


def _open(playbook, actor, **fields) -> Incident:
    now = timezone.now()
    detected = fields.pop("detected_at", now - timedelta(hours=2))
    incident = incident_open(
        title=fields.pop("title", "case"), playbook=playbook, actor=actor, detected_at=detected, **fields
    )
    return incident


def _stamp(incident: Incident, **fields) -> None:
    """Set phase timestamps as if the case had moved through its phases at those times."""
    Incident.objects.filter(pk=incident.pk).update(**fields)


def test_open_matrix_counts_open_cases_per_phase_and_severity_and_hides_restricted(
    playbook, responder, manager
) -> None:
    # given: two high in new, one low in containment, one closed, one restricted critical
    _open(playbook, responder, severity=Severity.HIGH)
    _open(playbook, responder, severity=Severity.HIGH)
    low = _open(playbook, responder, severity=Severity.LOW)
    _stamp(low, phase=Phase.CONTAINMENT)
    closed = _open(playbook, responder, severity=Severity.HIGH)
    _stamp(closed, phase=Phase.CLOSED)
    secret = _open(playbook, responder, severity=Severity.CRITICAL)
    incident_set_restricted(incident_id=secret.pk, actor=manager, restricted=True)
    # when
    for_manager = open_matrix(user=manager)
    for_responder = open_matrix(user=responder)
    # then
    rows = {row.phase: row for row in for_manager.rows}
    severities = [sev for sev, _ in for_manager.severities]
    assert rows[Phase.NEW].cells[severities.index(Severity.HIGH)].count == 2
    assert rows[Phase.NEW].cells[severities.index(Severity.CRITICAL)].count == 1
    assert rows[Phase.CONTAINMENT].total == 1
    assert "closed" not in rows
    assert for_manager.total == 4
    assert for_responder.total == 3  # the restricted case is not the responder's
    assert "phase=new&severity=3" in rows[Phase.NEW].cells[severities.index(Severity.HIGH)].url


def test_sla_per_priority_counts_waiting_breached_met_and_missed(playbook, responder, manager) -> None:
    now = timezone.now()
    # P1 target 15 min: one breached (detected 1 h ago), one waiting (detected 5 min ago)
    _open(playbook, responder, priority=Priority.P1, detected_at=now - timedelta(hours=1))
    _open(playbook, responder, priority=Priority.P1, detected_at=now - timedelta(minutes=5))
    # P3 target 4 h: one acknowledged in time, one acknowledged late
    met = _open(playbook, responder, priority=Priority.P3, detected_at=now - timedelta(days=1))
    _stamp(met, acknowledged=True, acknowledged_at=met.detected_at + timedelta(minutes=30), phase=Phase.ACKNOWLEDGED)
    late = _open(playbook, responder, priority=Priority.P3, detected_at=now - timedelta(days=1))
    _stamp(late, acknowledged=True, acknowledged_at=late.detected_at + timedelta(hours=5), phase=Phase.ACKNOWLEDGED)

    rows = {row.label: row for row in sla_by_priority(user=manager, period=Period.last(30, now=now), now=now)}

    assert (rows["P1"].waiting, rows["P1"].breached, rows["P1"].met, rows["P1"].missed) == (1, 1, 0, 0)
    assert (rows["P3"].waiting, rows["P3"].breached, rows["P3"].met, rows["P3"].missed) == (0, 0, 1, 1)
    assert rows["P1"].target == "15 min" and rows["P4"].target == "24 h"
    assert rows["P3"].met_ratio == "50%"


def test_breaches_list_waiting_cases_first_and_say_why(playbook, responder, manager) -> None:
    now = timezone.now()
    waiting = _open(
        playbook, responder, title="anon discovery", priority=Priority.P1, detected_at=now - timedelta(hours=2)
    )
    late = _open(playbook, responder, title="late ack", priority=Priority.P3, detected_at=now - timedelta(days=1))
    _stamp(late, acknowledged=True, acknowledged_at=late.detected_at + timedelta(hours=6), phase=Phase.ACKNOWLEDGED)

    rows = sla_breaches(user=manager, period=Period.last(30, now=now), now=now)

    assert [row.reference for row in rows] == [waiting.reference, late.reference]
    assert rows[0].state == "breached"
    assert "P1 target 15 min" in rows[0].why and "still not acknowledged after 2 h" in rows[0].why
    assert "no commander assigned" in rows[0].why
    assert rows[1].state == "missed" and "acknowledged 6 h after detection (2 h late)" in rows[1].why
    assert "notified" not in rows[0].why
    # once the sweep has sent the notification, the row says so
    sla_breaches_sweep(now=now)
    (first, _) = sla_breaches(user=manager, period=Period.last(30, now=now), now=now)
    assert "notified" in first.why and "to 1 recipient(s)" in first.why


def test_response_times_average_per_cluster_and_type_over_the_period(playbook, responder, manager) -> None:
    now = timezone.now()
    start = now - timedelta(days=3)
    for minutes, cluster in ((10, "payments-prod"), (30, "payments-prod"), (60, "analytics-dev")):
        case = _open(
            playbook, responder, cluster_name=cluster, finding_type="Discovery:Kubernetes/X", detected_at=start
        )
        _stamp(
            case,
            acknowledged=True,
            acknowledged_at=start + timedelta(minutes=minutes),
            eradication_at=start + timedelta(hours=minutes),
            closed_at=None,
        )
    old = _open(playbook, responder, cluster_name="payments-prod", detected_at=now - timedelta(days=60))
    _stamp(old, acknowledged=True, acknowledged_at=old.detected_at + timedelta(days=5))
    period = Period.last(30, now=now)

    by_cluster = {row.label: row for row in response_times_by(user=manager, period=period, field="cluster_name")}
    overall = response_times_overall(user=manager, period=period)

    assert by_cluster["payments-prod"].incidents == 2  # the 60-day-old case is outside the period
    assert by_cluster["payments-prod"].mtta == timedelta(minutes=20)
    assert by_cluster["payments-prod"].mttc == timedelta(hours=20)
    assert by_cluster["payments-prod"].mttr is None
    assert by_cluster["analytics-dev"].mtta == timedelta(hours=1)
    assert overall.incidents == 3 and overall.mtta == timedelta(minutes=100 / 3)
    (by_type,) = response_times_by(user=manager, period=period, field="finding_type")
    assert by_type.label == "Discovery:Kubernetes/X" and by_type.incidents == 3
    bucket, points = response_trend(user=manager, period=period)
    assert bucket == "day" and sum(p.incidents for p in points) == 3


def test_step_durations_run_from_the_previous_step_closed(playbook, responder, manager) -> None:
    now = timezone.now()
    detected = now - timedelta(days=1)
    case = _open(playbook, responder, detected_at=detected)
    _stamp(case, acknowledged=True, acknowledged_at=detected + timedelta(minutes=10))
    items = {i.step.step_id: i for i in ChecklistItem.objects.filter(incident=case).select_related("step")}
    ChecklistItem.objects.filter(pk=items["p1-confirm"].pk).update(
        status="done", done_at=detected + timedelta(minutes=40)
    )
    ChecklistItem.objects.filter(pk=items["p2-isolate"].pk).update(status="done", done_at=detected + timedelta(hours=5))
    ChecklistItem.objects.filter(pk=items["p2-revoke"].pk).update(status="na", done_at=detected + timedelta(hours=6))

    steps = step_durations(user=manager, period=Period.last(30, now=now))

    assert [(s.number.split(".")[0], s.median) for s in steps] == [
        ("2", timedelta(hours=5) - timedelta(minutes=40)),
        ("1", timedelta(minutes=30)),  # from the acknowledgement
    ]


def test_open_by_cluster_counts_breaches(playbook, responder, manager) -> None:
    now = timezone.now()
    _open(playbook, responder, cluster_name="payments-prod", priority=Priority.P1, detected_at=now - timedelta(hours=1))
    _open(playbook, responder, cluster_name="payments-prod", priority=Priority.P4)
    ((row,),) = [open_by_cluster(user=manager, now=now)]
    assert (row.cluster, row.open, row.breached) == ("payments-prod", 2, 1)
    assert row.timeline_url.endswith("/clusters/payments-prod/timeline/")
