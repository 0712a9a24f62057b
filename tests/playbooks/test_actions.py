"""ActionRun life cycle: request, two-person approval, claim, outcome, retries, cancel and sweep."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.errors import ValidationError
from incidents.models import TimelineEvent
from incidents.permissions import PermissionDeniedError
from playbooks import actions
from playbooks.actions import ActionSpec
from playbooks.models import ActionRun
from playbooks.tasks import action_run_task

pytestmark = pytest.mark.django_db
Status = ActionRun.Status
HANDLERS = "tests.playbooks.action_handlers"


@pytest.fixture(autouse=True)
def test_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("echo", "flaky", "broken", "cancellable", "db_blip")
    for name, needs_approval in ((name, False) for name in names):
        spec = ActionSpec(f"test.{name}", f"Test {name}", f"{HANDLERS}.{name}", needs_approval)
        monkeypatch.setitem(actions.ACTIONS, spec.name, spec)
    monkeypatch.setitem(actions.ACTIONS, "test.change", ActionSpec("test.change", "Change", f"{HANDLERS}.echo", True))
    monkeypatch.setitem(actions.ACTIONS, "test.missing", ActionSpec("test.missing", "Missing", "nowhere.handler"))


def _request(incident, actor, action="test.echo", **params):  # type: ignore[no-untyped-def]
    return actions.action_run_request(incident_id=incident.pk, action=action, actor=actor, params=params)


def test_request_queues_the_run_and_enqueues_it_after_commit(
    incident, responder, events, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        run = _request(incident, responder, text="hi")
    assert run.status == Status.QUEUED and run.params == {"text": "hi"}
    assert len(callbacks) == 1
    assert events(incident, TimelineEvent.Kind.ACTION)[-1].summary == f"Test echo (run #{run.pk}) requested"


def test_the_task_claims_runs_and_records_the_result(incident, responder, events) -> None:
    run = _request(incident, responder, text="hi")
    assert action_run_task.apply(args=[run.pk]).get() == "done"
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.result["summary"] == "echoed hi" and run.attempts == 1
    assert run.finished_at is not None
    assert "succeeded: echoed hi" in events(incident, TimelineEvent.Kind.ACTION)[-1].summary


def test_a_second_delivery_of_the_same_run_does_nothing(incident, responder, events) -> None:
    run = _request(incident, responder)
    action_run_task.apply(args=[run.pk])
    before = len(events(incident))
    assert action_run_task.apply(args=[run.pk]).get() == "not-claimed"
    run.refresh_from_db()
    assert run.attempts == 1 and len(events(incident)) == before


def test_claim_is_exclusive_while_the_claim_is_fresh(incident, responder) -> None:
    run = _request(incident, responder)
    assert actions.action_run_claim(run_id=run.pk) is not None
    assert actions.action_run_claim(run_id=run.pk) is None


def test_a_run_whose_worker_died_is_claimed_again_after_the_hard_limit(incident, responder, settings) -> None:
    run = _request(incident, responder)
    actions.action_run_claim(run_id=run.pk)
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)
    ActionRun.objects.filter(pk=run.pk).update(claimed_at=long_ago)
    assert actions.action_runs_requeue_stuck() == [run.pk]
    assert action_run_task.apply(args=[run.pk]).get() == "done"
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.attempts == 2


def test_transient_errors_are_retried_then_succeed(incident, responder) -> None:
    run = _request(incident, responder, action="test.flaky")
    # apply() runs the retry in-process too (eager), through the same claim.
    action_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.attempts == 2


def test_a_database_blip_in_the_handler_is_retried_not_failed(incident, responder) -> None:
    run = _request(incident, responder, action="test.db_blip")
    action_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.attempts == 2


def test_permanent_errors_fail_the_run_with_the_message(incident, responder, events) -> None:
    run = _request(incident, responder, action="test.broken")
    assert action_run_task.apply(args=[run.pk]).get() == "failed"
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.error == "endpoint unreachable: connection refused"
    assert "failed: endpoint unreachable" in events(incident, TimelineEvent.Kind.ACTION)[-1].summary


def test_an_unconfigured_action_cannot_be_requested(incident, responder) -> None:
    with pytest.raises(ValidationError, match="not configured"):
        _request(incident, responder, action="test.missing")
    assert not ActionRun.objects.exists()


def test_a_viewer_cannot_launch_actions(incident, viewer) -> None:
    with pytest.raises(PermissionDeniedError):
        _request(incident, viewer)


def test_changes_wait_for_a_second_persons_approval(incident, responder, manager, events) -> None:
    run = _request(incident, responder, action="test.change")
    assert run.status == Status.PROPOSED
    assert action_run_task.apply(args=[run.pk]).get() == "not-claimed"  # nothing runs before approval
    run = actions.action_run_approve(run_id=run.pk, actor=manager)
    assert run.status == Status.QUEUED and run.approved_by == manager
    assert [e.data["status"] for e in events(incident, TimelineEvent.Kind.ACTION)] == ["proposed", "queued"]


def test_the_proposer_cannot_approve_even_as_a_manager(incident, manager) -> None:
    run = _request(incident, manager, action="test.change")
    with pytest.raises(ValidationError, match="Two-person rule"):
        actions.action_run_approve(run_id=run.pk, actor=manager)


def test_a_responder_cannot_approve(incident, responder, other_responder) -> None:
    run = _request(incident, responder, action="test.change")
    with pytest.raises(PermissionDeniedError):
        actions.action_run_approve(run_id=run.pk, actor=other_responder)


def test_a_playbook_may_turn_the_two_person_rule_off(incident, responder) -> None:
    incident.playbook.document = {"two_person_rule": False}
    incident.playbook.save()
    assert _request(incident, responder, action="test.change").status == Status.QUEUED


def test_a_rejected_proposal_never_runs(incident, responder, manager) -> None:
    run = _request(incident, responder, action="test.change")
    run = actions.action_run_reject(run_id=run.pk, actor=manager, reason="change window closed")
    assert run.status == Status.REJECTED and run.error == "change window closed"
    assert actions.action_run_approve(run_id=run.pk, actor=manager).status == Status.REJECTED


def test_cancel_before_start_and_during_the_run(incident, responder) -> None:
    queued = _request(incident, responder)
    assert actions.action_run_cancel(run_id=queued.pk, actor=responder).status == Status.CANCELLED
    assert action_run_task.apply(args=[queued.pk]).get() == "not-claimed"
    running = _request(incident, responder, action="test.cancellable")
    actions.action_run_claim(run_id=running.pk)
    assert actions.action_run_cancel(run_id=running.pk, actor=responder).cancel_requested
    ActionRun.objects.filter(pk=running.pk).update(status=Status.QUEUED)  # let the task take it from here
    action_run_task.apply(args=[running.pk])
    running.refresh_from_db()
    assert running.status == Status.CANCELLED and running.result["summary"] == "stopped"
