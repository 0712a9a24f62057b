"""Behaviour that crosses into the worker: a real Celery worker consuming from the real Redis broker."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from incidents.models import CustodyEvent
from incidents.services import evidence_add
from incidents.tasks import evidence_reverify_all_task
from tests.worker import running_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def roles(role_groups) -> None:
    """Transactional tests flush the migration-made role groups; recreate them."""


def test_uploaded_evidence_is_re_verified_by_the_worker(celery_worker, incident, responder, settings, tmp_path) -> None:
    # given
    settings.MEDIA_ROOT = tmp_path
    # when: the upload commits, which enqueues the verification on commit
    evidence = evidence_add(
        incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile("a.log", b"audit line\n")
    )
    # then: the worker re-hashed the stored file and wrote the custody row
    assert wait_for(
        lambda: CustodyEvent.objects.filter(evidence=evidence, action=CustodyEvent.Action.VERIFIED).exists()
    )
    verified = CustodyEvent.objects.get(evidence=evidence, action=CustodyEvent.Action.VERIFIED)
    assert verified.sha256 == evidence.sha256 and verified.actor is None


def test_worker_records_a_mismatch_when_the_file_changed_before_it_ran(incident, responder, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    # given: the task is queued but no worker runs yet, and the stored bytes change meanwhile
    evidence = evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile("b.log", b"original"))
    (tmp_path / evidence.file.name).write_bytes(b"changed")
    # when: a worker comes up and takes the queued task
    with running_worker():
        found = wait_for(
            lambda: CustodyEvent.objects.filter(evidence=evidence, action=CustodyEvent.Action.VERIFY_FAILED).exists()
        )
    # then
    assert found
    assert (
        CustodyEvent.objects.get(evidence=evidence, action=CustodyEvent.Action.VERIFY_FAILED).sha256 != evidence.sha256
    )


def test_periodic_sweep_reverifies_all_evidence_and_catches_tampering(
    celery_worker, incident, responder, settings, tmp_path
) -> None:
    # given: two pieces of evidence, verified once on upload
    settings.MEDIA_ROOT = tmp_path
    kept = evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile("kept.log", b"kept"))
    altered = evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile("alt.log", b"alt"))
    verified = CustodyEvent.Action.VERIFIED
    assert wait_for(lambda: CustodyEvent.objects.filter(action=verified).count() == 2)
    (tmp_path / altered.file.name).write_bytes(b"altered in storage")
    # when: beat's sweep runs
    assert evidence_reverify_all_task() == 2
    # then
    assert wait_for(lambda: CustodyEvent.objects.filter(evidence=kept, action=verified).count() == 2)
    assert wait_for(
        lambda: CustodyEvent.objects.filter(evidence=altered, action=CustodyEvent.Action.VERIFY_FAILED).exists()
    )


def test_a_requested_action_runs_in_the_worker_once(celery_worker, incident, responder, monkeypatch) -> None:
    from playbooks import actions
    from playbooks.models import ActionRun

    spec = actions.ActionSpec("test.echo", "Echo", "tests.playbooks.action_handlers.echo")
    monkeypatch.setitem(actions.ACTIONS, spec.name, spec)
    # when: the request commits, which enqueues the run for the worker
    run = actions.action_run_request(incident_id=incident.pk, action="test.echo", actor=responder, params={"text": "x"})
    # then: the worker claimed it once and stored the handler's result
    assert wait_for(lambda: ActionRun.objects.get(pk=run.pk).status == ActionRun.Status.SUCCEEDED)
    run.refresh_from_db()
    assert run.attempts == 1 and run.result["summary"] == "echoed x"


def test_beat_sweep_in_the_worker_notifies_a_breach_once(celery_worker, playbook, responder, manager, mailoutbox):
    from datetime import timedelta

    from django.utils import timezone

    from incidents.models import Priority, SlaBreach
    from incidents.services import incident_open
    from incidents.tasks import sla_breach_sweep_task

    # given: a P1 case detected 40 min ago (target 15 min), never acknowledged
    late = timezone.now() - timedelta(minutes=40)
    incident = incident_open(title="anon", playbook=playbook, actor=responder, priority=Priority.P1, detected_at=late)
    # when: beat fires the sweep twice, back to back, into the real worker
    sla_breach_sweep_task.delay()
    sla_breach_sweep_task.delay()
    # then: one breach row and one email, whatever the interleaving
    assert wait_for(lambda: SlaBreach.objects.filter(incident=incident).exists())
    time.sleep(1.0)  # let the second sweep finish too
    assert SlaBreach.objects.filter(incident=incident).count() == 1
    assert [m.to for m in mailoutbox] == [[manager.email]]
